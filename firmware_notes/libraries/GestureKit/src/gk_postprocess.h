// Window probabilities -> gesture events, decision for decision as gesturekit's EventDetector
// (device/core/postprocess.py):
//   only event classes are announced (model_config.h kIsEventClass; the others are states,
//   which take part in every decision but are never announced; the background never is).
//   Each event class c has its own settings (kClassSmoothing, kClassThreshold, ...): average
//   the last smoothing_c probability vectors (float32, summed oldest first, as numpy reduces
//   axis 0); c is "on" when it is the top class of that average (the first one on a tie,
//   like np.argmax) and its averaged confidence reaches threshold_c (compared in double, like
//   Python); announce c once min_consecutive_c windows in a row are on, at most once per run,
//   and never within refractory_s_c of c's previous event. When two classes are ready in the
//   same window the more confident (then the lower index) is announced; the other fires on
//   the next window its run continues. reset() after a gap; refractory clocks survive it.
#ifndef GK_POSTPROCESS_H_
#define GK_POSTPROCESS_H_

#ifndef GK_MAX_CLASSES
#define GK_MAX_CLASSES 32  // per-class state lives inside the detector: no heap on a board
#endif

namespace gk {

struct PostprocessConfig {
  int smoothing;        // moving average over the last k window outputs (>= 1)
  double threshold;     // smoothed confidence needed to announce
  int min_consecutive;  // windows in a row that agree (>= 1)
  double refractory_s;  // silence after an event of the same class
};

struct Event {
  int index;         // class index
  float confidence;  // smoothed probability of that class
  double time;       // stream seconds at the last sample of the window that fired
  long end_sample;   // samples since the stream started, after that window's last sample
};

class EventDetector {
 public:
  // The same settings for every class; every class but `background_index` (-1: none) is an
  // event. `history` holds cfg.smoothing * num_classes floats, `smoothed` num_classes.
  EventDetector(const PostprocessConfig& cfg, int num_classes, int background_index,
                float* history, float* smoothed)
      : k_(num_classes), history_(history), smoothed_(smoothed) {
    if (!fits()) return;
    for (int c = 0; c < k_; ++c) {
      cfg_[c] = cfg;
      event_[c] = c != background_index;
    }
    finish_setup();
  }

  // Per-class settings, one array entry per class (model_config.h: kClassSmoothing,
  // kClassThreshold, kClassMinConsecutive, kClassRefractoryS, kIsEventClass). `history`
  // holds max(smoothing) * num_classes floats (kMaxSmoothing), `smoothed` num_classes.
  EventDetector(int num_classes, const int* smoothing, const double* threshold,
                const int* min_consecutive, const double* refractory_s, const bool* is_event,
                float* history, float* smoothed)
      : k_(num_classes), history_(history), smoothed_(smoothed) {
    if (!fits()) return;
    for (int c = 0; c < k_; ++c) {
      cfg_[c] = PostprocessConfig{smoothing[c], threshold[c], min_consecutive[c], refractory_s[c]};
      event_[c] = is_event[c];
    }
    finish_setup();
  }

  // False when num_classes is over GK_MAX_CLASSES (the detector then never fires).
  bool ok() const { return k_ > 0; }

  void reset() {
    count_ = 0;
    oldest_ = 0;
    for (int c = 0; c < k_; ++c) {
      run_length_[c] = 0;
      announced_[c] = false;
    }
  }

  // Feed one window's probabilities in stream order; true (and `*event` filled) on an event.
  // smoothed() then holds the average over the default (first event class's) smoothing.
  bool update(const float* probs, double time, long end_sample, Event* event) {
    remember(probs);
    int best = kNone;
    float best_confidence = 0.0f;
    for (int c = 0; c < k_; ++c) {
      if (!event_[c]) continue;
      const PostprocessConfig& cfg = cfg_[c];
      average(cfg.smoothing);
      int top = 0;
      for (int j = 1; j < k_; ++j) {
        if (smoothed_[j] > smoothed_[top]) top = j;
      }
      const float confidence = smoothed_[c];
      if (top != c || !(static_cast<double>(confidence) >= cfg.threshold)) {
        run_length_[c] = 0;
        announced_[c] = false;
        continue;
      }
      ++run_length_[c];
      if (announced_[c] || run_length_[c] < cfg.min_consecutive) continue;
      if (has_event_[c] && time - last_event_time_[c] < cfg.refractory_s) continue;
      if (best == kNone || confidence > best_confidence) {
        best = c;
        best_confidence = confidence;
      }
    }
    average(shown_smoothing_);
    if (best == kNone) return false;
    announced_[best] = true;
    has_event_[best] = true;
    last_event_time_[best] = time;
    *event = Event{best, best_confidence, time, end_sample};
    return true;
  }

  // The averaged probabilities of the last update (over the first event class's smoothing).
  const float* smoothed() const { return smoothed_; }

 private:
  static constexpr int kNone = -1;

  bool fits() {
    if (k_ > GK_MAX_CLASSES || k_ < 1) k_ = 0;
    return k_ > 0;
  }

  void finish_setup() {
    for (int c = 0; c < k_; ++c) {
      if (cfg_[c].smoothing > capacity_) capacity_ = cfg_[c].smoothing;
      has_event_[c] = false;
      last_event_time_[c] = 0.0;
    }
    shown_smoothing_ = capacity_;
    for (int c = 0; c < k_; ++c) {
      if (event_[c]) {
        shown_smoothing_ = cfg_[c].smoothing;
        break;
      }
    }
    reset();
  }

  void remember(const float* probs) {
    int slot;
    if (count_ < capacity_) {
      slot = (oldest_ + count_) % capacity_;
      ++count_;
    } else {  // full: overwrite the oldest, like a deque with maxlen
      slot = oldest_;
      oldest_ = (oldest_ + 1) % capacity_;
    }
    for (int k = 0; k < k_; ++k) history_[slot * k_ + k] = probs[k];
  }

  // smoothed_ = the mean of the newest min(n, count_) vectors, oldest of them first.
  void average(int n) {
    const int used = n < count_ ? n : count_;
    const int first = oldest_ + count_ - used;
    for (int k = 0; k < k_; ++k) {
      float sum = 0.0f;
      for (int j = 0; j < used; ++j) sum += history_[((first + j) % capacity_) * k_ + k];
      // numpy divides the float32 sum by the count in double and rounds once to float32;
      // a correctly rounded float division gives the same value (double has > 2x24+2 bits).
      smoothed_[k] = used > 1 ? sum / static_cast<float>(used) : sum;
    }
  }

  int k_;
  float* history_;
  float* smoothed_;
  PostprocessConfig cfg_[GK_MAX_CLASSES];
  bool event_[GK_MAX_CLASSES];
  int run_length_[GK_MAX_CLASSES];
  bool announced_[GK_MAX_CLASSES];
  bool has_event_[GK_MAX_CLASSES];
  double last_event_time_[GK_MAX_CLASSES];
  int capacity_ = 1;         // vectors the history holds: the largest smoothing
  int shown_smoothing_ = 1;  // what smoothed() averages over
  int count_ = 0, oldest_ = 0;  // vectors in the history, slot of the oldest
};

}  // namespace gk

#endif  // GK_POSTPROCESS_H_
