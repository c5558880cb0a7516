"""The live side: serial ports, the runner, the recorder, the simulator, the terminal view and
the live page in the browser."""
