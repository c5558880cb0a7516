// Ring buffer for the live stream: push samples, a window is due every `hop` samples.
//
// Same windows as gesturekit's StreamWindower (device/core/windowing.py): the first window ends at
// the `window`-th sample after a (re)start, then one every `hop` samples; reset() after a gap
// so no window spans it. Python keeps a doubled buffer to hand out a contiguous view; here
// the storage is exactly `window` samples and at() reads a window in time order, because the
// window is copied into the model's input tensor anyway (quantise_window) and RAM is scarce.
#ifndef GK_RING_BUFFER_H_
#define GK_RING_BUFFER_H_

namespace gk {

class RingBuffer {
 public:
  // `storage` holds window * channels floats and outlives the buffer (no heap on the board).
  RingBuffer(float* storage, int window, int hop, int channels)
      : data_(storage), window_(window), hop_(hop), channels_(channels) {
    reset();
  }

  void reset() {
    next_ = 0;
    filled_ = 0;
    since_window_ = 0;
  }

  // Adds one sample of `channels` values; true when a window ends with this sample.
  bool push(const float* sample) {
    float* slot = data_ + next_ * channels_;
    for (int c = 0; c < channels_; ++c) slot[c] = sample[c];
    next_ = next_ + 1 == window_ ? 0 : next_ + 1;
    if (filled_ < window_) {
      ++filled_;
      return filled_ == window_;  // the first window after a (re)start
    }
    if (++since_window_ < hop_) return false;
    since_window_ = 0;
    return true;
  }

  // Value of channel `c` at position `i` (0 = oldest) of the current window.
  float at(int i, int c) const {
    int slot = next_ + i;  // next_ is the oldest sample once the buffer is full
    if (slot >= window_) slot -= window_;
    return data_[slot * channels_ + c];
  }

  int window() const { return window_; }
  int channels() const { return channels_; }

 private:
  float* data_;
  int window_, hop_, channels_;
  int next_ = 0;          // slot the next sample goes to
  int filled_ = 0;        // samples since reset, up to window_
  int since_window_ = 0;  // samples since the last window, once the first one is out
};

}  // namespace gk

#endif  // GK_RING_BUFFER_H_
