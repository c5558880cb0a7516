// gesture_classifier: the exported model on the board; events on the serial monitor in the
// same readable format as `gesturekit run`, e.g.
//       12.80 s  jump                  0.87  (21.4 ms)
//
// Copy model_data.h, model_data.cc and model_config.h from the bundle (`gesturekit export RUN
// --out BUNDLE`) into this folder; nothing else is edited. Pipeline per sample, identical to
// the Python runner: gk::GestureClassifier (gk_classifier.h, the same code the emulated board
// runs in tests/test_qemu_firmware.py): ring buffer -> every kHop samples normalise + quantise
// into the input tensor -> reset LSTM state -> Invoke -> dequantise -> EventDetector.

#if !defined(GK_IMU_LSM9DS1) && !defined(GK_IMU_BMI270) && !defined(GK_IMU_MPU6050)
#if defined(ARDUINO_ARCH_ESP32)
#define GK_IMU_MPU6050
#else
#define GK_IMU_BMI270  // Nano 33 BLE Sense Rev1: compile with -DGK_IMU_LSM9DS1
#endif
#endif
#ifndef GK_BAUD
#define GK_BAUD 115200
#endif

#include <Chirale_TensorFlowLite.h>
#include <GestureKit.h>
#include <gk_imu.h>

#include "model_config.h"
#include "model_data.h"
#include <gk_classifier.h>  // after the model's files: the pipeline, shared with the emulated board

using namespace gesturekit;  // the model's constants (model_config.h)

static_assert(kNumChannels == gk::kImuChannels, "the model's channels are not the IMU's 6");
static_assert(static_cast<int>(kSampleRateHz) == kSampleRateHz, "gk::Pacer takes whole Hz");

alignas(16) uint8_t tensor_arena[kTensorArenaBytes];
gk::GestureClassifier classifier;
gk::Pacer pacer(static_cast<uint32_t>(kSampleRateHz), 25);
char line[96];

// Units the IMU reader gives (g, rad/s) against the model's: a deg/s model gets deg/s.
float unit_factor[kNumChannels];

[[noreturn]] void fail(const char* why) {
  for (;;) {
    Serial.print("# error: ");
    Serial.println(why);
    delay(1000);
  }
}

void setup_units() {
  for (int c = 0; c < kNumChannels; ++c) {
    const String unit = kUnits[c];
    const bool gyro = c >= 3;
    if (unit == (gyro ? "rad/s" : "g")) {
      unit_factor[c] = 1.0f;
    } else if (gyro && (unit == "deg/s" || unit == "dps")) {
      unit_factor[c] = 1.0f / gk::kRadPerDeg;
    } else {
      fail("model.json units are not g and rad/s or deg/s: record with imu_stream and retrain");
    }
  }
}

void setup() {
  Serial.begin(GK_BAUD);
  for (uint32_t t = millis(); !Serial && millis() - t < 3000;) {
  }
  setup_units();
  const char* error = classifier.begin(tensor_arena, kTensorArenaBytes);
  if (error) fail(error);
  if (!gk::imu_begin(static_cast<uint32_t>(kSampleRateHz))) fail(gk::kImuName);
  Serial.print("# gesture_classifier: ");
  Serial.print(kNumClasses);
  Serial.print(" classes, window ");
  Serial.print(kWindow);
  Serial.print(", hop ");
  Serial.print(kHop);
  Serial.print(", arena used ");
  Serial.print(static_cast<unsigned long>(classifier.arena_used_bytes()));
  Serial.print(" of ");
  Serial.print(kTensorArenaBytes);
  Serial.print(" bytes; imu ");
  Serial.println(gk::kImuName);
  if (kHasReferencePose) {  // the first samples set the frame (gk_frame.h): hold the pose
    Serial.print("# reference pose: hold it still for ");
    Serial.print(kReferenceSamples / kSampleRateHz);
    Serial.println(" s (send 'r' to set it again)");
  }
  pacer.start(micros());
}

void loop() {
  const uint32_t now = micros();
  const gk::Pacer::Action action = pacer.poll(now);
  if (action == gk::Pacer::kWait) return;
  if (action == gk::Pacer::kGap) {  // fell 0.5 s behind: no window may span the hole
    classifier.restart();
    gk::format_gap_line(classifier.samples() / static_cast<double>(kSampleRateHz), "overrun",
                        25.0 / kSampleRateHz, line);  // at least 25 periods
    Serial.println(line);
  }
  float v[kNumChannels];
  gk::imu_read(v);
  for (int c = 0; c < kNumChannels; ++c) v[c] *= unit_factor[c];
  if (kHasReferencePose && Serial.read() == 'r') {  // the user holds the pose once more
    classifier.frame().restart();
    Serial.println("# reference pose requested: hold it still");
  }
  gk::Event event;
  bool fired;
  const bool frame_was_set = classifier.frame().set();
  const bool classified = classifier.push(v, &event, &fired);
  if (kHasReferencePose && !frame_was_set && classifier.frame().set()) {
    Serial.print("# reference pose set: the sensor sits ");
    Serial.print(classifier.frame().degrees(), 0);
    Serial.println(" degrees from the training frame");
  }
  if (classified && fired) {
    const double latency_ms = (micros() - now) / 1000.0;
    gk::format_event_line(event.time, kLabels[event.index], event.confidence, latency_ms, line);
    Serial.println(line);
  }
}
