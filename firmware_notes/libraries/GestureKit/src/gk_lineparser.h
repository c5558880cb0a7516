// The serial line protocol read on the board, line for line as gesturekit's LineParser
// (device/core/lineparser.py): one sample per line, values split on commas (or, without a comma,
// on whitespace), `\n` or `\r\n`; a header of channel names; `#` comments; the first line
// after start is dropped (it may be cut). Anything else is a bad line, counted by the
// Python parser's reason and skipped, never a sample, so it cannot shift a window.
//
// Numbers are read as Python's float() reads them (sign, digits with single underscores
// between them, point, exponent, inf/infinity/nan; surrounding whitespace), to a double
// with strtod (correctly rounded), then rounded once to float32, as numpy's astype does.
#ifndef GK_LINEPARSER_H_
#define GK_LINEPARSER_H_
#include <math.h>
#include <stdlib.h>

namespace gk {

struct ParserStats {
  long samples = 0, headers = 0, comments = 0, empty = 0, dropped_first = 0;
  // Bad lines by reason (the Python parser's names).
  long long_lines = 0, fields = 0, not_numeric = 0, nonfinite = 0, binary = 0;
  long bad_lines() const { return long_lines + fields + not_numeric + nonfinite + binary; }
};

class LineParser {
 public:
  static constexpr int kMaxLineBytes = 512;
  static constexpr int kMaxChannels = 16;

  explicit LineParser(int channels) : channels_(channels) {}

  // Feed one byte. Returns true when it completed a good sample, now in `sample()`.
  bool feed(char byte) {
    if (byte != '\n') {
      if (skipping_) return false;
      if (length_ == kMaxLineBytes) {  // over-long: discard up to its newline
        skipping_ = true;
        return false;
      }
      line_[length_++] = byte;
      return false;
    }
    const bool was_long = skipping_;
    skipping_ = false;
    line_[length_] = '\0';
    const int length = length_;
    length_ = 0;
    if (dropping_) {  // the first line is dropped whatever it is
      dropping_ = false;
      ++stats_.dropped_first;
      return false;
    }
    if (was_long) {
      ++stats_.long_lines;
      return false;
    }
    return parse(line_, length);
  }

  const float* sample() const { return sample_; }
  const ParserStats& stats() const { return stats_; }
  // The text of the line just completed (valid until the next byte): board commands.
  const char* line() const { return line_; }

 private:
  static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

  // The fields of a line, split like Python's split(b",") when it has a comma (empty fields
  // included), else like split() (runs of whitespace, none empty): one split for samples and
  // headers.
  struct Fields {
    const char* p;
    const char* end;
    bool comma;
    bool done = false;

    // The next field as [*begin, *stop); false when there is none left.
    bool next(const char** begin, const char** stop) {
      if (done) return false;
      if (!comma) {
        while (p < end && is_space(*p)) ++p;
        if (p == end) return false;
      }
      const char* q = p;
      while (q < end && (comma ? *q != ',' : !is_space(*q))) ++q;
      *begin = p;
      *stop = q;
      done = comma && q == end;  // the field after the last comma is the last one
      p = comma && q < end ? q + 1 : q;
      return true;
    }
  };

  // Case-insensitive: does [begin, end) equal `word`?
  static bool equals(const char* begin, const char* end, const char* word) {
    for (; begin < end; ++begin, ++word) {
      if (*word == '\0' || lower(*begin) != *word) return false;
    }
    return *word == '\0';
  }

  // Digits with single underscores between them, from `p`; the end, or nullptr if none.
  static const char* digit_part(const char* p, const char* end, char* out, int* n) {
    if (p == end || !is_digit(*p)) return nullptr;
    while (p < end) {
      if (is_digit(*p)) {
        out[(*n)++] = *p++;
      } else if (*p == '_' && p + 1 < end && is_digit(p[1])) {
        ++p;
      } else {
        break;
      }
    }
    return p;
  }

  // Python's float() of the field [begin, end); false where it raises ValueError.
  static bool parse_number(const char* begin, const char* end, double* value) {
    while (begin < end && is_space(*begin)) ++begin;
    while (end > begin && is_space(end[-1])) --end;
    char text[kMaxLineBytes + 1];
    int n = 0;
    const char* p = begin;
    if (p < end && (*p == '+' || *p == '-')) text[n++] = *p++;
    if (equals(p, end, "inf") || equals(p, end, "infinity") || equals(p, end, "nan")) {
      const bool nan = lower(*p) == 'n';
      *value = nan ? NAN : (n == 1 && text[0] == '-' ? -INFINITY : INFINITY);
      return true;
    }
    const char* after = digit_part(p, end, text, &n);
    const bool integer_digits = after != nullptr;
    if (after) p = after;
    if (p < end && *p == '.') {
      text[n++] = *p++;
      after = digit_part(p, end, text, &n);
      if (after) {
        p = after;
      } else if (!integer_digits) {
        return false;  // "." alone
      }
    } else if (!integer_digits) {
      return false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      text[n++] = *p++;
      if (p < end && (*p == '+' || *p == '-')) text[n++] = *p++;
      after = digit_part(p, end, text, &n);
      if (!after) return false;
      p = after;
    }
    if (p != end) return false;
    text[n] = '\0';
    *value = strtod(text, nullptr);
    return true;
  }

  bool parse(const char* line, int length) {
    const char* end = line + length;
    bool comma = false;
    for (const char* p = line; p < end; ++p) comma = comma || *p == ',';
    float values[kMaxChannels];
    int count = 0;
    Fields fields{line, end, comma};
    const char* begin;
    const char* stop;
    while (fields.next(&begin, &stop)) {
      double value;
      if (!parse_number(begin, stop, &value)) return classify_text(line, end, comma);
      if (count < kMaxChannels) values[count] = static_cast<float>(value);
      ++count;
    }
    if (count == 0) {
      ++stats_.empty;
      return false;
    }
    if (count != channels_) {
      ++stats_.fields;
      return false;
    }
    for (int c = 0; c < count; ++c) {
      if (!isfinite(values[c])) {  // NaN, inf, or beyond float32
        ++stats_.nonfinite;
        return false;
      }
      sample_[c] = values[c];
    }
    ++stats_.samples;
    return true;
  }

  bool classify_text(const char* line, const char* line_end, bool comma) {
    const char* begin = line;
    const char* end = line_end;
    while (begin < end && is_space(*begin)) ++begin;
    while (end > begin && is_space(end[-1])) --end;
    if (begin < end && *begin == '#') {
      ++stats_.comments;
    } else if (begin == end) {
      ++stats_.empty;
    } else if (!printable(begin, end)) {
      ++stats_.binary;
    } else if (is_header(line, line_end, comma)) {
      ++stats_.headers;
    } else {
      ++stats_.not_numeric;
    }
    return false;
  }

  static bool printable(const char* begin, const char* end) {
    for (; begin < end; ++begin) {
      const unsigned char c = static_cast<unsigned char>(*begin);
      if (!(c == '\t' || (c >= 32 && c < 127))) return false;
    }
    return true;
  }

  // Every field a name ([A-Za-z_][A-Za-z0-9_.-]* after stripping), as many as channels.
  bool is_header(const char* line, const char* end, bool comma) const {
    int count = 0;
    Fields fields{line, end, comma};
    const char* begin;
    const char* stop;
    while (fields.next(&begin, &stop)) {
      const char* a = begin;
      const char* b = stop;
      while (a < b && is_space(*a)) ++a;
      while (b > a && is_space(b[-1])) --b;
      if (a == b || !(*a == '_' || (lower(*a) >= 'a' && lower(*a) <= 'z'))) return false;
      for (const char* q = a + 1; q < b; ++q) {
        const char c = lower(*q);
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.' || c == '-')) {
          return false;
        }
      }
      ++count;
    }
    return count == channels_;
  }

  int channels_;
  ParserStats stats_;
  char line_[kMaxLineBytes + 1];
  int length_ = 0;
  bool skipping_ = false;
  bool dropping_ = true;
  float sample_[kMaxChannels] = {};
};

}  // namespace gk
#endif  // GK_LINEPARSER_H_
