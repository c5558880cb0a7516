"""Export: TFLite float and int8, ONNX, the TFLM C array, parity checks and reports."""
