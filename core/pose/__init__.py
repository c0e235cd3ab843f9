"""Pose and face driver: offline extraction, cleaning, retargeting to a photo, rendering."""
