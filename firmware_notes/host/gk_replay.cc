// Host driver for the board's pure C++ parts: reads commands on stdin, answers on stdout.
// tests/test_firmware.py runs it beside gesturekit's Python runner code and compares.
//
// Numbers travel as C99 hex floats (Python's float.hex / float.fromhex), so nothing is
// rounded on the way. One command per line:
//   setup W H C K smoothing threshold min_consecutive refractory_s background
//         in_scale in_zero out_scale out_zero mean*C std*C
//   sample v*C          -> "window q*(W*C)" when a window is due, else nothing
//   output t end q*K    -> "probs p*K", "smoothed s*K", then "event index confidence t end"
//                          when the detector fires
//   probs t end p*K     -> the same for float probabilities (no dequantisation)
//   classes (smoothing threshold min_consecutive refractory_s is_event)*K
//                       -> after setup: per-class post-processing (a new detector)
//   reset               -> gap: ring buffer and detector restart
//   eventline t label confidence latency_ms | gapline t reason seconds
//   sampleline decimals v...                -> the formatted line
//   pace rate max_late now_us...            -> one action per clock reading: w, s or g
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "GestureKit.h"

namespace {

double number(std::istringstream& in) {
  std::string token;
  if (!(in >> token)) {
    std::fprintf(stderr, "gk_replay: missing number\n");
    std::exit(2);
  }
  return std::strtod(token.c_str(), nullptr);
}

struct Pipeline {
  int window = 0, channels = 0, classes = 0;
  std::vector<float> ring_storage, mean, std_dev, history, smoothed;
  std::vector<int8_t> input;
  gk::Quantization in{}, out{};
  gk::RingBuffer* ring = nullptr;
  gk::EventDetector* detector = nullptr;
};

void setup(Pipeline& p, std::istringstream& in) {
  p.window = static_cast<int>(number(in));
  const int hop = static_cast<int>(number(in));
  p.channels = static_cast<int>(number(in));
  p.classes = static_cast<int>(number(in));
  gk::PostprocessConfig cfg{};
  cfg.smoothing = static_cast<int>(number(in));
  cfg.threshold = number(in);
  cfg.min_consecutive = static_cast<int>(number(in));
  cfg.refractory_s = number(in);
  const int background = static_cast<int>(number(in));
  p.in = {static_cast<float>(number(in)), static_cast<int>(number(in))};
  p.out = {static_cast<float>(number(in)), static_cast<int>(number(in))};
  for (int c = 0; c < p.channels; ++c) p.mean.push_back(static_cast<float>(number(in)));
  for (int c = 0; c < p.channels; ++c) p.std_dev.push_back(static_cast<float>(number(in)));
  p.ring_storage.resize(p.window * p.channels);
  p.input.resize(p.window * p.channels);
  p.history.resize(cfg.smoothing * p.classes);
  p.smoothed.resize(p.classes);
  p.ring = new gk::RingBuffer(p.ring_storage.data(), p.window, hop, p.channels);
  p.detector = new gk::EventDetector(cfg, p.classes, background, p.history.data(),
                                     p.smoothed.data());
}

// Per-class settings, as model_config.h's kClass* arrays and kIsEventClass.
void classes(Pipeline& p, std::istringstream& in) {
  std::vector<int> smoothing(p.classes), min_consecutive(p.classes);
  std::vector<double> threshold(p.classes), refractory(p.classes);
  bool is_event[GK_MAX_CLASSES];
  int longest = 1;
  for (int c = 0; c < p.classes; ++c) {
    smoothing[c] = static_cast<int>(number(in));
    threshold[c] = number(in);
    min_consecutive[c] = static_cast<int>(number(in));
    refractory[c] = number(in);
    is_event[c] = number(in) != 0.0;
    if (smoothing[c] > longest) longest = smoothing[c];
  }
  p.history.assign(longest * p.classes, 0.0f);
  delete p.detector;
  p.detector = new gk::EventDetector(p.classes, smoothing.data(), threshold.data(),
                                     min_consecutive.data(), refractory.data(), is_event,
                                     p.history.data(), p.smoothed.data());
}

void update(Pipeline& p, const float* probs, double t, long end) {
  gk::Event event{};
  const bool fired = p.detector->update(probs, t, end, &event);
  std::printf("probs");
  for (int k = 0; k < p.classes; ++k) std::printf(" %a", static_cast<double>(probs[k]));
  std::printf("\nsmoothed");
  for (int k = 0; k < p.classes; ++k) std::printf(" %a", static_cast<double>(p.detector->smoothed()[k]));
  std::printf("\n");
  if (fired) {
    std::printf("event %d %a %a %ld\n", event.index, static_cast<double>(event.confidence),
                event.time, event.end_sample);
  }
}

}  // namespace

int main() {
  Pipeline p;
  std::string line;
  char text[256];
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "setup") {
      setup(p, in);
    } else if (command == "sample") {
      std::vector<float> sample(p.channels);
      for (float& v : sample) v = static_cast<float>(number(in));
      if (p.ring->push(sample.data())) {
        gk::quantize_window(*p.ring, p.mean.data(), p.std_dev.data(), p.in, p.input.data());
        std::printf("window");
        for (int8_t q : p.input) std::printf(" %d", q);
        std::printf("\n");
      }
    } else if (command == "output" || command == "probs") {
      const double t = number(in);
      const long end = static_cast<long>(number(in));
      std::vector<float> probs(p.classes);
      if (command == "output") {
        std::vector<int8_t> q(p.classes);
        for (int8_t& v : q) v = static_cast<int8_t>(number(in));
        gk::dequantize_output(q.data(), p.classes, p.out, probs.data());
      } else {
        for (float& v : probs) v = static_cast<float>(number(in));
      }
      update(p, probs.data(), t, end);
    } else if (command == "classes") {
      classes(p, in);
    } else if (command == "reset") {
      p.ring->reset();
      p.detector->reset();
    } else if (command == "eventline") {
      const double t = number(in);
      std::string label;
      in >> label;
      const float confidence = static_cast<float>(number(in));
      gk::format_event_line(t, label.c_str(), confidence, number(in), text);
      std::printf("%s\n", text);
    } else if (command == "gapline") {
      const double t = number(in);
      std::string reason;
      in >> reason;
      gk::format_gap_line(t, reason.c_str(), number(in), text);
      std::printf("%s\n", text);
    } else if (command == "sampleline") {
      const int decimals = static_cast<int>(number(in));
      std::vector<float> values;
      std::string token;
      while (in >> token) values.push_back(static_cast<float>(std::strtod(token.c_str(), nullptr)));
      gk::format_sample_line(values.data(), static_cast<int>(values.size()), decimals, text);
      std::printf("%s\n", text);
    } else if (command == "pace") {
      const uint32_t rate = static_cast<uint32_t>(number(in));
      gk::Pacer pacer(rate, static_cast<uint32_t>(number(in)));
      std::string token;
      bool started = false;
      while (in >> token) {
        const uint32_t now = static_cast<uint32_t>(std::strtoull(token.c_str(), nullptr, 10));
        if (!started) {
          pacer.start(now);
          started = true;
        }
        const gk::Pacer::Action action = pacer.poll(now);
        std::printf("%c", action == gk::Pacer::kWait ? 'w' : action == gk::Pacer::kSample ? 's' : 'g');
      }
      std::printf(" %u\n", pacer.late_samples());
    } else if (!command.empty()) {
      std::fprintf(stderr, "gk_replay: unknown command '%s'\n", command.c_str());
      return 2;
    }
    std::fflush(stdout);
  }
  return 0;
}
