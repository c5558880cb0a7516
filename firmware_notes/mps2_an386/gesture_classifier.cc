// gesture_classifier on the emulated board: the host plays the sensor. Sample lines come in
// over UART0 (e.g. `gesturekit simulate REC --port PTY`), are parsed like the runner parses
// them (gk::LineParser), and go through the same pipeline as the Arduino sketch
// (gk::GestureClassifier); events go out in the runner's format.
//
// Comment lines starting with "#!" are commands (every parser counts them as comments):
//   #!windows   from now on, every window's runner line ("  window @N: label p") and
//               "# int8 @N: <output bytes in hex> ticks <Invoke time in 25 MHz ticks>"
//   #!stats     one "# stats key=value ..." line: parser counts, windows, events, memory
//   #!reference set the reference-pose frame again from the next samples (SIGUSR1 for `run`)
#include <string.h>

#include "model_config.h"
#include "model_data.h"
// After the model's files (see gk_classifier.h).
#include "board.h"
#include "gk_classifier.h"
#include "gk_format.h"
#include "gk_lineparser.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"

#ifndef GK_KERNELS
#define GK_KERNELS "unknown"
#endif

using namespace gesturekit;  // the model's constants (model_config.h)

static_assert(kNumChannels <= gk::LineParser::kMaxChannels, "raise gk::LineParser::kMaxChannels");

alignas(16) static uint8_t tensor_arena[kTensorArenaBytes];
static gk::GestureClassifier classifier;
static gk::LineParser parser(kNumChannels);
static char text[192];
static long windows = 0, events = 0;
static uint32_t invoke_ticks_max = 0;
static bool print_windows = false;

static int append_int(char* out, int len, long value) { return gk::append_fixed(out, len, value, 0, 0); }

static int append_pair(char* out, int len, const char* key, long value) {
  len = gk::append_text(out, len, " ");
  len = gk::append_text(out, len, key);
  len = gk::append_text(out, len, "=");
  return append_int(out, len, value);
}

static void print_banner() {
  int len = gk::append_text(text, 0, "# gesture_classifier: ");
  len = append_int(text, len, kNumClasses);
  len = gk::append_text(text, len, " classes, window ");
  len = append_int(text, len, kWindow);
  len = gk::append_text(text, len, ", hop ");
  len = append_int(text, len, kHop);
  len = gk::append_text(text, len, ", arena used ");
  len = append_int(text, len, static_cast<long>(classifier.arena_used_bytes()));
  len = gk::append_text(text, len, " of ");
  len = append_int(text, len, kTensorArenaBytes);
  gk::append_text(text, len, " bytes; board mps2-an386 (Cortex-M4F), kernels " GK_KERNELS "; ready");
  uart_puts(text);
}

static void print_stats() {
  const gk::ParserStats& s = parser.stats();
  int len = gk::append_text(text, 0, "# stats");
  len = append_pair(text, len, "samples", s.samples);
  len = append_pair(text, len, "bad_lines", s.bad_lines());
  len = append_pair(text, len, "long", s.long_lines);
  len = append_pair(text, len, "fields", s.fields);
  len = append_pair(text, len, "not_numeric", s.not_numeric);
  len = append_pair(text, len, "nonfinite", s.nonfinite);
  len = append_pair(text, len, "binary", s.binary);
  len = append_pair(text, len, "headers", s.headers);
  len = append_pair(text, len, "comments", s.comments);
  len = append_pair(text, len, "empty", s.empty);
  len = append_pair(text, len, "dropped_first", s.dropped_first);
  len = append_pair(text, len, "windows", windows);
  len = append_pair(text, len, "events", events);
  len = append_pair(text, len, "arena_used", static_cast<long>(classifier.arena_used_bytes()));
  len = append_pair(text, len, "arena_bytes", kTensorArenaBytes);
  len = append_pair(text, len, "stack_used", static_cast<long>(board_stack_used()));
  len = append_pair(text, len, "stack_bytes", static_cast<long>(board_stack_size()));
  append_pair(text, len, "invoke_ticks_max", static_cast<long>(invoke_ticks_max));
  uart_puts(text);
}

static void print_window() {
  const float* probs = classifier.probs();
  int top = 0;
  for (int k = 1; k < kNumClasses; ++k) {
    if (probs[k] > probs[top]) top = k;  // first of equals, like np.argmax
  }
  // The runner's --windows line: f"  window @{end_sample}: {label} {probs[top]:.3f}"
  int len = gk::append_text(text, 0, "  window @");
  len = append_int(text, len, classifier.samples());
  len = gk::append_text(text, len, ": ");
  len = gk::append_text(text, len, kLabels[top]);
  len = gk::append_text(text, len, " ");
  gk::append_fixed(text, len, probs[top], 3, 0);
  uart_puts(text);
  static const char kHex[] = "0123456789abcdef";
  len = gk::append_text(text, 0, "# int8 @");
  len = append_int(text, len, classifier.samples());
  len = gk::append_text(text, len, ":");
  text[len++] = ' ';
  for (int k = 0; k < kNumClasses; ++k) {
    const uint8_t byte = static_cast<uint8_t>(classifier.output()[k]);
    text[len++] = kHex[byte >> 4];
    text[len++] = kHex[byte & 15];
  }
  text[len] = '\0';
  len = gk::append_text(text, len, " ticks ");
  append_int(text, len, static_cast<long>(classifier.invoke_ticks()));
  uart_puts(text);
}

// The runner's announcements of the frame, as comments: "# reference pose: ...".
static void print_frame() {
  int len = gk::append_text(text, 0, "# reference pose ");
  if (classifier.frame().set()) {
    len = gk::append_text(text, len, "set: the sensor sits ");
    len = gk::append_fixed(text, len, classifier.frame().degrees(), 0, 0);
    gk::append_text(text, len, " degrees from the training frame");
  } else {
    gk::append_text(text, len, "requested: hold it still");
  }
  uart_puts(text);
}

static void command(const char* line) {
  if (strncmp(line, "#!windows", 9) == 0) print_windows = true;
  if (strncmp(line, "#!stats", 7) == 0) print_stats();
  if (strncmp(line, "#!reference", 11) == 0 && kHasReferencePose) {
    classifier.frame().restart();
    print_frame();
  }
}

static void on_sample(uint32_t arrived_us) {
  gk::Event event;
  bool fired;
  const bool frame_was_set = classifier.frame().set();
  const bool classified = classifier.push(parser.sample(), &event, &fired);
  if (kHasReferencePose && !frame_was_set && classifier.frame().set()) print_frame();
  if (!classified) return;
  ++windows;
  if (classifier.invoke_ticks() > invoke_ticks_max) invoke_ticks_max = classifier.invoke_ticks();
  if (print_windows) print_window();
  if (fired) {
    ++events;
    const double latency_ms = (board_micros() - arrived_us) / 1000.0;
    gk::format_event_line(event.time, kLabels[event.index], event.confidence, latency_ms, text);
    uart_puts(text);
  }
}

int main() {
  board_init();
  RegisterDebugLogCallback([](const char* s) { uart_write(s, strlen(s)); });
  classifier.set_clock(board_ticks);
  const char* error = classifier.begin(tensor_arena, sizeof(tensor_arena));
  // QEMU drops output until it notices that the pty was opened (it checks about once a
  // second), so say who we are until the host first sends something.
  int byte = -1;
  for (uint32_t last = board_millis() - 1000; byte < 0; byte = uart_read()) {
    if (board_millis() - last >= 500) {
      last = board_millis();
      if (error) {
        gk::append_text(text, gk::append_text(text, 0, "# error: "), error);
        uart_puts(text);
      } else {
        print_banner();
      }
    }
    __asm volatile("wfi");  // until the UART or SysTick interrupts
  }
  if (error) {
    for (;;) __asm volatile("wfi");
  }
  for (;; byte = uart_read()) {
    if (byte < 0) {
      __asm volatile("wfi");
      continue;
    }
    const long comments = parser.stats().comments;
    if (parser.feed(static_cast<char>(byte))) {
      on_sample(board_micros());
    } else if (parser.stats().comments != comments) {
      command(parser.line());
    }
  }
}
