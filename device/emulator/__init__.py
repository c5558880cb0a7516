"""The emulated board: the firmware in firmware_notes/ built for a Cortex-M4F and run in QEMU.

QEMU's `mps2-an386` machine (a Cortex-M4F) puts the board's UART0 on a pseudo-terminal, so
`gesturekit run --port PTY` reads the `stream` firmware like a board, and `gesturekit simulate
REC --port PTY` feeds the `classifier` firmware, which windows, runs the int8 model with
TensorFlow Lite Micro and prints events itself. `firmware.py` builds; `qemu.py` boots the .elf
and talks to its UART.
"""
