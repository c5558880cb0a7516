// The reference-pose frame, as gesturekit's StreamFrame (device/core/frame.py) and in the same
// order of operations (double precision, one float cast per value at the end), so the board
// turns a stream exactly as `gesturekit run` does:
//   - the first `samples` samples pass as they are; the mean of their accelerometer is this
//     sensor's gravity g (as a unit vector) in the pose the model names (model_config.h);
//   - R is the smallest rotation taking g onto the training median `target` (Rodrigues:
//     R = I + K + K K / (1 + g.target), K the cross-product matrix of g x target);
//   - every later sample has each x/y/z triad (accelerometer and gyroscope) turned by R.
// restart() sets the frame again from the next samples (the user holds the pose once more).
#ifndef GK_FRAME_H_
#define GK_FRAME_H_

#include <math.h>

namespace gk {

class ReferenceFrame {
 public:
  // `triads`: channel indices of each x/y/z group; `acc`: which of them is the accelerometer.
  ReferenceFrame(int samples, const double* target, const int (*triads)[3], int n_triads, int acc)
      : samples_(samples), target_(target), triads_(triads), n_triads_(n_triads), acc_(acc) {}

  void restart() {
    count_ = 0;
    set_ = false;
    sum_[0] = sum_[1] = sum_[2] = 0.0;
  }

  bool set() const { return set_; }
  double degrees() const { return degrees_; }

  // One sample (`channels` values) -> `out`, in the frame once it is set.
  void apply(const float* in, float* out, int channels) {
    for (int c = 0; c < channels; ++c) out[c] = in[c];
    if (!set_) {
      for (int k = 0; k < 3; ++k) sum_[k] += static_cast<double>(in[triads_[acc_][k]]);
      if (++count_ == samples_) set_frame();
      return;
    }
    for (int t = 0; t < n_triads_; ++t) {
      const int* ix = triads_[t];
      const double x = in[ix[0]], y = in[ix[1]], z = in[ix[2]];
      for (int r = 0; r < 3; ++r) {
        out[ix[r]] = static_cast<float>(x * rot_[r][0] + y * rot_[r][1] + z * rot_[r][2]);
      }
    }
  }

 private:
  void set_frame() {
    set_ = true;
    double g[3] = {sum_[0] / count_, sum_[1] / count_, sum_[2] / count_};
    const double norm = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) rot_[r][c] = r == c ? 1.0 : 0.0;
    degrees_ = 0.0;
    if (norm <= 1e-6) return;  // no gravity to go by: the stream stays as it is
    for (int k = 0; k < 3; ++k) g[k] /= norm;
    const double* b = target_;
    const double v[3] = {g[1] * b[2] - g[2] * b[1], g[2] * b[0] - g[0] * b[2],
                         g[0] * b[1] - g[1] * b[0]};
    const double cosine = g[0] * b[0] + g[1] * b[1] + g[2] * b[2];
    degrees_ = acos(cosine > 1.0 ? 1.0 : cosine < -1.0 ? -1.0 : cosine) * 57.29577951308232;
    if (cosine < -1.0 + 1e-9) return;  // upside down: no smallest turn, left as it is
    const double k[3][3] = {{0, -v[2], v[1]}, {v[2], 0, -v[0]}, {-v[1], v[0], 0}};
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 3; ++c) {
        const double kk = k[r][0] * k[0][c] + k[r][1] * k[1][c] + k[r][2] * k[2][c];
        rot_[r][c] = (rot_[r][c] + k[r][c]) + kk / (1.0 + cosine);  // numpy's (I + K) + KK/(1+c)
      }
    }
  }

  const int samples_;
  const double* target_;
  const int (*triads_)[3];
  const int n_triads_, acc_;
  int count_ = 0;
  bool set_ = false;
  double sum_[3] = {0, 0, 0};
  double rot_[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  double degrees_ = 0.0;
};

}  // namespace gk

#endif  // GK_FRAME_H_
