// imu_stream on the emulated board: a recording compiled into flash plays the IMU. Header,
// a units comment, then one sample line per period, paced by SysTick with the same
// gk::Pacer deadlines and line format as the Arduino sketch; at the end it starts over.
#include "board.h"
#include "gk_format.h"
#include "gk_pacer.h"
#include "recording.h"

static char line[16 * 25];

static void print_preamble() {
  gk::format_header_line(kRecordingChannelNames, kRecordingChannels, line);
  uart_puts(line);
  int len = gk::append_text(line, 0, "# units: ");
  len = gk::append_text(line, len, kRecordingUnits);
  len = gk::append_text(line, len, "; rate ");
  len = gk::append_fixed(line, len, kRecordingRateHz, 0, 0);
  gk::append_text(line, len, " Hz; imu: a recording in flash (mps2-an386)");
  uart_puts(line);
}

int main() {
  board_init();
  gk::Pacer pacer(kRecordingRateHz, 25);  // 25 periods behind: restart, say so
  print_preamble();
  pacer.start(board_micros());
  long next = 0;
  for (;;) {
    const gk::Pacer::Action action = pacer.poll(board_micros());
    if (action == gk::Pacer::kWait) {
      __asm volatile("wfi");  // SysTick wakes us every millisecond
      continue;
    }
    if (action == gk::Pacer::kGap) {
      uart_puts("# gap: fell behind, schedule restarted");
      print_preamble();
    }
    if (next == kRecordingSamples) {
      next = 0;
      uart_puts("# recording starts over");
    }
    gk::format_sample_line(kRecordingData + next * kRecordingChannels, kRecordingChannels, 4, line);
    uart_puts(line);
    ++next;
  }
}
