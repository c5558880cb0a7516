// Fixed-rate sampling paced by a free-running microsecond clock (Arduino's micros()).
//
// Deadlines are start + k / rate, never "now + period", so a late sample does not push the
// ones after it and the rate does not drift; the fractional part of 1e6 / rate is carried,
// so 3 Hz or 119 Hz average exactly. Differences are taken modulo 2^32, so the 71-minute
// wrap of micros() is harmless. A loop that falls a few periods behind (a slow inference)
// catches up by sampling back to back; one that falls `max_late` periods behind starts again
// with a gap, like the Python runner after a silence, instead of inventing a burst of samples.
#ifndef GK_PACER_H_
#define GK_PACER_H_

#include <stdint.h>

namespace gk {

class Pacer {
 public:
  enum Action { kWait, kSample, kGap };

  Pacer(uint32_t rate_hz, uint32_t max_late_periods)
      : rate_(rate_hz), period_(1000000u / rate_hz), remainder_(1000000u % rate_hz),
        max_late_us_(max_late_periods * (1000000u / rate_hz)) {}

  void start(uint32_t now_us) {
    next_ = now_us;
    carry_ = 0;
  }

  // kWait: not yet. kSample: take one sample now. kGap: too late; restart the windows, then
  // take one sample now (the schedule restarts from this moment).
  Action poll(uint32_t now_us) {
    const int32_t late = static_cast<int32_t>(now_us - next_);
    if (late < 0) return kWait;
    if (static_cast<uint32_t>(late) >= max_late_us_) {
      start(now_us);
      advance();
      return kGap;
    }
    if (late >= static_cast<int32_t>(period_)) ++late_samples_;
    advance();
    return kSample;
  }

  // Samples taken a whole period or more after their deadline (caught up).
  uint32_t late_samples() const { return late_samples_; }

 private:
  void advance() {
    next_ += period_;
    carry_ += remainder_;
    if (carry_ >= rate_) {
      carry_ -= rate_;
      ++next_;
    }
  }

  uint32_t rate_, period_, remainder_, max_late_us_;
  uint32_t next_ = 0, carry_ = 0;
  uint32_t late_samples_ = 0;
};

}  // namespace gk

#endif  // GK_PACER_H_
