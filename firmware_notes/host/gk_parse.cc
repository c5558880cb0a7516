// Host harness for gk_lineparser.h: reads a byte stream on stdin (argv[1]: channels), prints
// every good sample as hex floats, then the counts, so tests can compare with LineParser.
#include <cstdio>
#include <cstdlib>

#include "gk_lineparser.h"

int main(int argc, char** argv) {
  const int channels = argc > 1 ? std::atoi(argv[1]) : 6;
  gk::LineParser parser(channels);
  for (int byte; (byte = std::getchar()) != EOF;) {
    if (!parser.feed(static_cast<char>(byte))) continue;
    for (int c = 0; c < channels; ++c) std::printf(c ? " %a" : "sample %a", parser.sample()[c]);
    std::printf("\n");
  }
  const gk::ParserStats& s = parser.stats();
  std::printf("stats %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld\n", s.samples, s.headers, s.comments,
              s.empty, s.dropped_first, s.long_lines, s.fields, s.not_numeric, s.nonfinite,
              s.binary);
  return 0;
}
