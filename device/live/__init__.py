"""The live side: serial ports, the runner, the recorder, the simulator, the views."""
