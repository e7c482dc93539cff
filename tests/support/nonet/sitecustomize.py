"""Loaded by every Python process started with this folder on ``PYTHONPATH`` (see
``support.offline``): no connection leaves the machine (a test must never download)."""

from support_nonet_guard import block_network

block_network()
