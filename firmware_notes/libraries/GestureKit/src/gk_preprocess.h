// Normalisation, int8 quantisation of the input window and dequantisation of the output,
// operation for operation as gesturekit's Classifier (device/core/backends.py) does them in numpy
// float32, so the board feeds the model the same bytes as `gesturekit run --int8`:
//   x_norm = (x - mean[c]) / std[c]                      (float32, divide, no reciprocal)
//   q      = clamp(round_half_even(x_norm / scale) + zero_point, -128, 127)
//   p      = (float(q) - float(zero_point)) * scale
// None of these is an a*b+c, so a compiler contracting into FMA (gnu++17 on a Cortex-M4F)
// cannot change a result.
#ifndef GK_PREPROCESS_H_
#define GK_PREPROCESS_H_

#include <math.h>
#include <stdint.h>

#include "gk_ring_buffer.h"

namespace gk {

struct Quantization {
  float scale;
  int zero_point;
};

// One normalised, quantised value; numpy's np.round rounds half to even, as rintf does in
// the default rounding mode (the model's own QUANTIZE op would round half away from zero).
inline int8_t quantize_value(float x, float mean, float std_dev, Quantization in) {
  float normalized = (x - mean) / std_dev;
  float q = rintf(normalized / in.scale) + static_cast<float>(in.zero_point);
  if (!(q >= -128.0f)) q = -128.0f;  // also catches NaN
  if (q > 127.0f) q = 127.0f;
  return static_cast<int8_t>(q);
}

// The ring's current window -> `out` (window * channels int8, time-major like the tensor).
inline void quantize_window(const RingBuffer& ring, const float* mean, const float* std_dev,
                            Quantization in, int8_t* out) {
  const int channels = ring.channels();
  for (int i = 0; i < ring.window(); ++i) {
    for (int c = 0; c < channels; ++c) {
      out[i * channels + c] = quantize_value(ring.at(i, c), mean[c], std_dev[c], in);
    }
  }
}

// Model output (int8) -> probabilities (float32).
inline void dequantize_output(const int8_t* q, int n, Quantization out, float* probs) {
  for (int k = 0; k < n; ++k) {
    probs[k] = (static_cast<float>(q[k]) - static_cast<float>(out.zero_point)) * out.scale;
  }
}

}  // namespace gk

#endif  // GK_PREPROCESS_H_
