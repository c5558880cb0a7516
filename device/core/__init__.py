"""The numpy core: recordings, windows, model metadata, bundles, post-processing.

No serial ports, terminals or servers here: training reads its data through these."""
