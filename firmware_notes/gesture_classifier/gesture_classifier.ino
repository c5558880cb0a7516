// gesture_classifier: the exported model on the board; events on the serial monitor in the
// same readable format as `gesturekit run`, e.g.
//       12.80 s  jump                  0.87  (21.4 ms)
//
// Copy model_data.h, model_data.cc and model_config.h from the bundle (`gesturekit export RUN
// --out BUNDLE`) into this folder; nothing else is edited. Pipeline per sample, identical to
// the Python runner (tests/test_firmware.py checks the pure parts on the host): ring buffer
// -> every kHop samples normalise + quantise into the input tensor -> reset LSTM state ->
// Invoke -> dequantise -> EventDetector -> event line.

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
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

using namespace gesturekit;  // the model's constants (model_config.h)

static_assert(kNumChannels == gk::kImuChannels, "the model's channels are not the IMU's 6");
static_assert(static_cast<int>(kSampleRateHz) == kSampleRateHz, "gk::Pacer takes whole Hz");

alignas(16) uint8_t tensor_arena[kTensorArenaBytes];
float ring_storage[kWindow * kNumChannels];
float history[kSmoothing * kNumClasses];
float smoothed[kNumClasses];
float probs[kNumClasses];
char line[96];

gk::RingBuffer ring(ring_storage, kWindow, kHop, kNumChannels);
gk::EventDetector detector({kSmoothing, kThreshold, kMinConsecutive, kRefractoryS}, kNumClasses,
                           kBackgroundClass, history, smoothed);
gk::Pacer pacer(static_cast<uint32_t>(kSampleRateHz), 25);
tflite::MicroInterpreter* interpreter = nullptr;
long samples = 0;
uint32_t start_us = 0;

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
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) fail("model schema differs from this TFLM");
  static tflite::MicroMutableOpResolver<kNumOps> resolver;
  if (!AddModelOps(resolver)) fail("an op of the model could not be registered");
  static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena,
                                                     kTensorArenaBytes);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) fail("AllocateTensors: raise kTensorArenaBytes");
  if (!gk::imu_begin(static_cast<uint32_t>(kSampleRateHz))) fail(gk::kImuName);
  Serial.print("# gesture_classifier: ");
  Serial.print(kNumClasses);
  Serial.print(" classes, window ");
  Serial.print(kWindow);
  Serial.print(", hop ");
  Serial.print(kHop);
  Serial.print(", arena used ");
  Serial.print(static_cast<unsigned long>(interpreter->arena_used_bytes()));
  Serial.print(" of ");
  Serial.print(kTensorArenaBytes);
  Serial.print(" bytes; imu ");
  Serial.println(gk::kImuName);
  start_us = micros();
  pacer.start(start_us);
}

void classify(uint32_t sample_us) {
  TfLiteTensor* input = interpreter->input(0);
  gk::quantize_window(ring, kMean, kStd, {kInputScale, kInputZeroPoint}, input->data.int8);
  if (kStateful) interpreter->Reset();  // LSTM state starts from zero for every window
  if (interpreter->Invoke() != kTfLiteOk) fail("Invoke failed");
  gk::dequantize_output(interpreter->output(0)->data.int8, kNumClasses,
                        {kOutputScale, kOutputZeroPoint}, probs);
  gk::Event event;
  if (detector.update(probs, samples / static_cast<double>(kSampleRateHz), samples, &event)) {
    const double latency_ms = (micros() - sample_us) / 1000.0;
    gk::format_event_line(event.time, kLabels[event.index], event.confidence, latency_ms, line);
    Serial.println(line);
  }
}

void loop() {
  const uint32_t now = micros();
  const gk::Pacer::Action action = pacer.poll(now);
  if (action == gk::Pacer::kWait) return;
  if (action == gk::Pacer::kGap) {  // fell 0.5 s behind: no window may span the hole
    ring.reset();
    detector.reset();
    gk::format_gap_line(samples / static_cast<double>(kSampleRateHz), "overrun",
                        25.0 / kSampleRateHz, line);  // at least 25 periods
    Serial.println(line);
  }
  float v[kNumChannels];
  gk::imu_read(v);
  for (int c = 0; c < kNumChannels; ++c) v[c] *= unit_factor[c];
  ++samples;
  if (ring.push(v)) classify(now);
}
