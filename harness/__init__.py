"""Helpers that the tests and the benches share, kept out of the installed package: a
throwaway Ray head on this machine, and a harness that feeds the emulated board a stream and
collects what it prints."""
