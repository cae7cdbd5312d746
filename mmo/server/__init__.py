"""The node: player sessions over TCP, the tick, the service."""
