"""gesturekit: IMU gestures from a board's serial port to a model running on that board."""

__version__ = "0.1.0"
