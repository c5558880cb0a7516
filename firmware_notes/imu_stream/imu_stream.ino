// imu_stream: the board's IMU as text lines for `gesturekit record` and `gesturekit run`.
//
// Prints a header line of channel names, a few '#' comment lines (units, rate, IMU), then one
// sample per line: ax,ay,az in g and gx,gy,gz in rad/s, 4 decimals, at a fixed rate paced by
// micros() deadlines (gk::Pacer), not delay(). See firmware_notes/README.md for flashing.

// The IMU: picked from the board; a Nano 33 BLE Sense Rev1 (LSM9DS1) needs -DGK_IMU_LSM9DS1
// (or change the line below). Any of the three can be forced with a -D flag.
#if !defined(GK_IMU_LSM9DS1) && !defined(GK_IMU_BMI270) && !defined(GK_IMU_MPU6050)
#if defined(ARDUINO_ARCH_ESP32)
#define GK_IMU_MPU6050
#else
#define GK_IMU_BMI270
#endif
#endif

#ifndef GK_RATE_HZ
#define GK_RATE_HZ 50  // the model's sample_rate_hz (model.json); 50 for HAPT and the synthetic set
#endif
#ifndef GK_BAUD
#define GK_BAUD 115200  // ignored by native USB (Nano 33 BLE, ESP32-S3 "USB" port); see README
#endif

#include <GestureKit.h>
#include <gk_imu.h>

gk::Pacer pacer(GK_RATE_HZ, 25);  // behind by 25 periods (0.5 s at 50 Hz): restart, say so
char line[gk::kImuChannels * 25];
uint32_t gaps = 0;

void print_preamble() {
  gk::format_header_line(gk::kImuChannelNames, gk::kImuChannels, line);
  Serial.println(line);
  Serial.print("# units: ax ay az g, gx gy gz rad/s; rate ");
  Serial.print(GK_RATE_HZ);
  Serial.print(" Hz; imu ");
  Serial.println(gk::kImuName);
}

void setup() {
  Serial.begin(GK_BAUD);
  // Native USB: wait up to 3 s for a terminal so the header is not lost, then go on anyway.
  for (uint32_t start = millis(); !Serial && millis() - start < 3000;) {
  }
  if (!gk::imu_begin(GK_RATE_HZ)) {
    for (;;) {  // keep saying it: a monitor opened later still sees why nothing streams
      Serial.print("# error: IMU not found: ");
      Serial.println(gk::kImuName);
      delay(1000);
    }
  }
  print_preamble();
  pacer.start(micros());
}

void loop() {
  const gk::Pacer::Action action = pacer.poll(micros());
  if (action == gk::Pacer::kWait) return;
  if (action == gk::Pacer::kGap) {
    ++gaps;
    Serial.print("# gap: fell behind, schedule restarted (");
    Serial.print(gaps);
    Serial.println(")");
    print_preamble();  // a host that connected late gets the header too
  }
  float v[gk::kImuChannels];
  gk::imu_read(v);
  gk::format_sample_line(v, gk::kImuChannels, 4, line);
  Serial.println(line);
}
