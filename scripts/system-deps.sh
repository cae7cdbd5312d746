#!/usr/bin/env bash
# System packages some tests use (a C compiler for the load generator's
# compiled frame scanner, promtool, systemd-analyze, PostgreSQL,
# redis-server, a virtual screen: Xvfb and the libraries of Qt's xcb plugin;
# podman and debootstrap to build and run the Docker image; a headless
# Chromium with its WebDriver for the web client). Installed with
# apt-get when running as root on a Debian machine that lacks them; elsewhere
# the tests that need them skip and say why.
set -euo pipefail
want=()
command -v gcc >/dev/null || want+=(gcc)
command -v promtool >/dev/null || want+=(prometheus)
command -v systemd-analyze >/dev/null || want+=(systemd)
command -v systemd-socket-activate >/dev/null || want+=(systemd)
command -v ip >/dev/null || want+=(iproute2)
[ -x /usr/lib/postgresql/*/bin/postgres ] 2>/dev/null || want+=(postgresql)
command -v redis-server >/dev/null || want+=(redis-server)
dpkg -s libxkbcommon-x11-0 >/dev/null 2>&1 || want+=(libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3)
# Qt's xcb platform plugin, for the monitor's window on an X screen: the
# libraries mmo.gui.xcb names (with these packages) when they are missing.
xcb=(libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-randr0 libxcb-render-util0
     libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libxkbcommon0 libxcb-util1 libxcb-shm0
     libxcb-render0 libxcb-sync1 libxcb-xfixes0 libxcb1 libx11-xcb1 libx11-6 libxext6 libgl1
     libfontconfig1 libfreetype6 libdbus-1-3)
dpkg -s "${xcb[@]}" >/dev/null 2>&1 || want+=("${xcb[@]}")
command -v Xvfb >/dev/null || want+=(xvfb)
# tests/test_image.py: podman builds docker/Dockerfile.server on vfs storage
# (no overlay, fuse or user namespaces needed as root) on a base debootstrap
# makes.
command -v podman >/dev/null || want+=(podman)
command -v debootstrap >/dev/null || want+=(debootstrap)
command -v chromium >/dev/null || want+=(chromium)
command -v chromedriver >/dev/null || want+=(chromium-driver)
if [ ${#want[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: not root or no apt-get; tests needing ${want[*]} will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# A registry that cannot be reached is not a test failure: the tests that
# need these tools skip and say why.
if ! apt-get update -qq || ! apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; then
    echo "system-deps: could not install ${want[*]}; tests needing them will skip" >&2
fi
