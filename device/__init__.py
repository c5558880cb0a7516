"""Board side: recording I/O, windowing, serial streams, inference and post-processing.

Nothing here imports TensorFlow, Keras, gesturekit.train or gesturekit.export.
"""
