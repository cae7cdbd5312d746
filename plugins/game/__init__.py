"""The game logic shipped with mmo, as extensions (see :mod:`mmo.extensions`)."""
