// Text the board prints: sample lines for `gesturekit record`/`run`, and event lines in the
// runner's readable format (device/live/runner.py), character for character.
//
// Numbers go through format_fixed, not printf: newlib-nano on Cortex-M drops float printf
// unless linked with -u _printf_float, and Arduino's Print::print(float) rounds half up
// where Python rounds the exact binary value half to even (0.625 -> "0.62"). format_fixed
// rounds the exact value of the double, as Python's format() does, with integer arithmetic.
#ifndef GK_FORMAT_H_
#define GK_FORMAT_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

namespace gk {

// Writes `value` with `decimals` (0..6) digits after the point, right-aligned in `width`
// characters, NUL-terminated; returns the length. `out` needs max(width, 24) + 1 bytes.
// Handles |value| < 2^31; larger values print as "inf" (never a sample or time here).
inline int format_fixed(double value, int decimals, int width, char* out) {
  char digits[32];
  int n = 0;
  const bool negative = signbit(value);
  double magnitude = fabs(value);
  if (!(magnitude < 2147483648.0)) {
    memcpy(digits, "fni", 3);  // reversed below
    n = 3;
  } else {
    // magnitude = mantissa * 2^-shift exactly. Without its trailing zero bits a float32
    // value's mantissa is below 2^24, and any double's below 2^53, so mantissa * 10^decimals
    // fits in 64 bits (exact) for float32 values up to 6 decimals and doubles up to 3. Past
    // that, low bits are dropped (then the last digit may be off by one).
    int exponent;
    const double fraction = frexp(magnitude, &exponent);
    uint64_t mantissa = static_cast<uint64_t>(ldexp(fraction, 53));
    int shift = 53 - exponent;
    while (mantissa != 0 && (mantissa & 1) == 0 && shift > 1) {
      mantissa >>= 1;
      --shift;
    }
    uint64_t scale = 1;
    for (int d = 0; d < decimals; ++d) scale *= 10;
    while (mantissa > UINT64_MAX / scale) {
      mantissa >>= 1;
      --shift;
    }
    const uint64_t scaled = mantissa * scale;
    uint64_t q = 0;  // shift >= 64: scaled value < 0.5, rounds to zero
    if (shift < 64) {
      q = scaled >> shift;
      const uint64_t rest = scaled & ((uint64_t{1} << shift) - 1);
      const uint64_t half = uint64_t{1} << (shift - 1);
      if (rest > half || (rest == half && (q & 1))) ++q;  // half to even
    }
    for (int d = 0; d < decimals; ++d) {
      digits[n++] = static_cast<char>('0' + q % 10);
      q /= 10;
    }
    if (decimals > 0) digits[n++] = '.';
    do {
      digits[n++] = static_cast<char>('0' + q % 10);
      q /= 10;
    } while (q > 0);
  }
  if (negative) digits[n++] = '-';
  int len = 0;
  for (int pad = width - n; pad > 0; --pad) out[len++] = ' ';
  while (n > 0) out[len++] = digits[--n];
  out[len] = '\0';
  return len;
}

// `text` left-aligned in `width` characters (Python's {:<20}); returns the new length.
inline int append_left(char* out, int len, const char* text, int width) {
  int written = 0;
  for (; text[written] != '\0'; ++written) out[len + written] = text[written];
  for (; written < width; ++written) out[len + written] = ' ';
  out[len + written] = '\0';
  return len + written;
}

inline int append_text(char* out, int len, const char* text) { return append_left(out, len, text, 0); }

inline int append_fixed(char* out, int len, double value, int decimals, int width) {
  return len + format_fixed(value, decimals, width, out + len);
}

// The runner's readable event line, without the newline:
//   f"{t:9.2f} s  {label:<20} {confidence:5.2f}  ({latency_ms:.1f} ms)"
// `out` needs 64 bytes plus the label's length.
inline int format_event_line(double time_s, const char* label, float confidence,
                             double latency_ms, char* out) {
  int len = format_fixed(time_s, 2, 9, out);
  len = append_text(out, len, " s  ");
  len = append_left(out, len, label, 20);
  len = append_text(out, len, " ");
  len = append_fixed(out, len, static_cast<double>(confidence), 2, 5);
  len = append_text(out, len, "  (");
  len = append_fixed(out, len, latency_ms, 1, 0);
  return append_text(out, len, " ms)");
}

// The runner's gap line: f"{t:9.2f} s  -- gap ({reason}, {seconds:.1f} s): windows restart --"
inline int format_gap_line(double time_s, const char* reason, double seconds, char* out) {
  int len = format_fixed(time_s, 2, 9, out);
  len = append_text(out, len, " s  -- gap (");
  len = append_text(out, len, reason);
  len = append_text(out, len, ", ");
  len = append_fixed(out, len, seconds, 1, 0);
  return append_text(out, len, " s): windows restart --");
}

// One sample line of the serial protocol: values split by commas, `decimals` digits each.
// `out` needs 25 bytes per value.
inline int format_sample_line(const float* values, int n, int decimals, char* out) {
  int len = 0;
  out[0] = '\0';
  for (int c = 0; c < n; ++c) {
    if (c > 0) len = append_text(out, len, ",");
    len = append_fixed(out, len, static_cast<double>(values[c]), decimals, 0);
  }
  return len;
}

// The header line: channel names split by commas.
inline int format_header_line(const char* const* names, int n, char* out) {
  int len = 0;
  out[0] = '\0';
  for (int c = 0; c < n; ++c) {
    if (c > 0) len = append_text(out, len, ",");
    len = append_text(out, len, names[c]);
  }
  return len;
}

}  // namespace gk

#endif  // GK_FORMAT_H_
