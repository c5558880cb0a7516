// Window probabilities -> gesture events, decision for decision as gesturekit's EventDetector
// (device/postprocess.py):
//   average the last `smoothing` probability vectors (float32, summed oldest first, as numpy
//   reduces axis 0), take the top class (first one on a tie, like np.argmax) when its
//   averaged confidence reaches `threshold` (compared in double, like Python), and announce
//   it once `min_consecutive` windows in a row agree, at most once per run of agreeing
//   windows and never within `refractory_s` of the previous event. The background class is
//   never announced. reset() after a gap; the refractory clock survives it, as in Python.
#ifndef GK_POSTPROCESS_H_
#define GK_POSTPROCESS_H_

namespace gk {

struct PostprocessConfig {
  int smoothing;        // moving average over the last k window outputs (>= 1)
  double threshold;     // smoothed confidence needed to announce
  int min_consecutive;  // windows in a row that agree (>= 1)
  double refractory_s;  // silence after an event
};

struct Event {
  int index;         // class index
  float confidence;  // smoothed probability of that class
  double time;       // stream seconds at the last sample of the window that fired
  long end_sample;   // samples since the stream started, after that window's last sample
};

class EventDetector {
 public:
  // `history` holds smoothing * num_classes floats and `smoothed` num_classes floats.
  EventDetector(const PostprocessConfig& cfg, int num_classes, int background_index,
                float* history, float* smoothed)
      : cfg_(cfg), k_(num_classes), background_(background_index), history_(history),
        smoothed_(smoothed) {
    reset();
  }

  void reset() {
    count_ = 0;
    oldest_ = 0;
    candidate_ = kNone;
    run_length_ = 0;
    announced_ = false;
  }

  // Feed one window's probabilities in stream order; true (and `*event` filled) on an event.
  bool update(const float* probs, double time, long end_sample, Event* event) {
    remember(probs);
    average();
    int top = 0;
    for (int k = 1; k < k_; ++k) {
      if (smoothed_[k] > smoothed_[top]) top = k;
    }
    const float confidence = smoothed_[top];
    const int candidate = static_cast<double>(confidence) >= cfg_.threshold ? top : kNone;
    if (candidate == candidate_) {
      ++run_length_;
    } else {
      candidate_ = candidate;
      run_length_ = 1;
      announced_ = false;
    }
    if (candidate == kNone || candidate == background_ || announced_ ||
        run_length_ < cfg_.min_consecutive) {
      return false;
    }
    if (has_event_ && time - last_event_time_ < cfg_.refractory_s) return false;
    announced_ = true;
    has_event_ = true;
    last_event_time_ = time;
    *event = Event{top, confidence, time, end_sample};
    return true;
  }

  // The averaged probabilities of the last update.
  const float* smoothed() const { return smoothed_; }

 private:
  static constexpr int kNone = -1;

  void remember(const float* probs) {
    int slot;
    if (count_ < cfg_.smoothing) {
      slot = (oldest_ + count_) % cfg_.smoothing;
      ++count_;
    } else {  // full: overwrite the oldest, like a deque with maxlen
      slot = oldest_;
      oldest_ = (oldest_ + 1) % cfg_.smoothing;
    }
    for (int k = 0; k < k_; ++k) history_[slot * k_ + k] = probs[k];
  }

  void average() {
    for (int k = 0; k < k_; ++k) {
      float sum = 0.0f;
      for (int j = 0; j < count_; ++j) {
        sum += history_[((oldest_ + j) % cfg_.smoothing) * k_ + k];
      }
      // numpy divides the float32 sum by the count in double and rounds once to float32;
      // a correctly rounded float division gives the same value (double has > 2x24+2 bits).
      smoothed_[k] = count_ > 1 ? sum / static_cast<float>(count_) : sum;
    }
  }

  PostprocessConfig cfg_;
  int k_, background_;
  float* history_;
  float* smoothed_;
  int count_ = 0, oldest_ = 0;  // vectors in the history, slot of the oldest
  int candidate_ = kNone, run_length_ = 0;
  bool announced_ = false;
  bool has_event_ = false;
  double last_event_time_ = 0.0;
};

}  // namespace gk

#endif  // GK_POSTPROCESS_H_
