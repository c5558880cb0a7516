// The board's IMU as 6 values in model units: ax ay az in g, gx gy gz in rad/s, in one
// right-handed frame per chip. Arduino only (the rest of GestureKit is pure C++).
//
// Define one before including this header (the sketches pick one from the board):
//   GK_IMU_LSM9DS1   Nano 33 BLE Sense Rev1, library Arduino_LSM9DS1 (g, deg/s; 119 Hz ODR)
//   GK_IMU_BMI270    Nano 33 BLE Sense Rev2, library Arduino_BMI270_BMM150 (g, deg/s; 100 Hz)
//   GK_IMU_MPU6050   any board with an MPU6050 on I2C (ESP32-S3), read here with Wire
// Gyros report deg/s; training data (HAPT, the synthetic set) is rad/s: converted here, once.
#ifndef GK_IMU_H_
#define GK_IMU_H_

#include <Arduino.h>

namespace gk {

constexpr float kRadPerDeg = 0.017453292519943295f;
constexpr int kImuChannels = 6;
constexpr const char* kImuChannelNames[kImuChannels] = {"ax", "ay", "az", "gx", "gy", "gz"};

}  // namespace gk

#if defined(GK_IMU_LSM9DS1)
#include <Arduino_LSM9DS1.h>

namespace gk {
constexpr const char* kImuName = "LSM9DS1 (Nano 33 BLE Sense Rev1)";
inline bool imu_begin(uint32_t /*rate_hz*/) { return IMU.begin(); }
// The library's frame is the LSM9DS1's own (right-handed) accelerometer/gyro frame.
inline void imu_read(float* v) {
  IMU.readAcceleration(v[0], v[1], v[2]);
  IMU.readGyroscope(v[3], v[4], v[5]);
  for (int c = 3; c < 6; ++c) v[c] *= kRadPerDeg;
}
}  // namespace gk

#elif defined(GK_IMU_BMI270)
#include <Arduino_BMI270_BMM150.h>

namespace gk {
constexpr const char* kImuName = "BMI270 (Nano 33 BLE Sense Rev2)";
inline bool imu_begin(uint32_t /*rate_hz*/) { return IMU.begin(); }
// Arduino_BMI270_BMM150 (1.1.0 to at least 1.2.x) returns x = -chip_y, y = -chip_x on the
// Nano 33 BLE: a mirror image, left-handed, and the gyro signs no longer follow the right-hand
// rule (library issue #44, PR #68). Undo it, so the stream is the BMI270's own right-handed
// frame. If a later library drops that remap, this undo is wrong: check with the README's
// 30-second axis test before recording.
inline void imu_read(float* v) {
  float lx, ly, lz;
  IMU.readAcceleration(lx, ly, lz);
  v[0] = -ly;
  v[1] = -lx;
  v[2] = lz;
  IMU.readGyroscope(lx, ly, lz);
  v[3] = -ly * kRadPerDeg;
  v[4] = -lx * kRadPerDeg;
  v[5] = lz * kRadPerDeg;
}
}  // namespace gk

#elif defined(GK_IMU_MPU6050)
#include <Wire.h>

#ifndef GK_I2C_SDA
#define GK_I2C_SDA 8  // ESP32-S3 DevKitC default I2C pins; change to your wiring
#endif
#ifndef GK_I2C_SCL
#define GK_I2C_SCL 9
#endif

namespace gk {
constexpr const char* kImuName = "MPU6050 (I2C 0x68)";
constexpr uint8_t kMpuAddress = 0x68;  // AD0 low; 0x69 with AD0 high
constexpr float kMpuLsbPerG = 8192.0f;    // ACCEL_CONFIG +-4 g
constexpr float kMpuLsbPerDps = 65.5f;    // GYRO_CONFIG +-500 deg/s

inline bool mpu_write(uint8_t reg, uint8_t value) {
  Wire.beginTransmission(kMpuAddress);
  Wire.write(reg);
  Wire.write(value);
  return Wire.endTransmission() == 0;
}

// Digital low-pass below half the sample rate, so the stream is not aliased.
inline uint8_t mpu_dlpf_for(uint32_t rate_hz) {
  if (rate_hz <= 50) return 4;   // 21 Hz accel / 20 Hz gyro
  if (rate_hz <= 100) return 3;  // 44 / 42 Hz
  if (rate_hz <= 200) return 2;  // 94 / 98 Hz
  return 1;                      // 184 / 188 Hz
}

inline bool imu_begin(uint32_t rate_hz) {
  Wire.begin(GK_I2C_SDA, GK_I2C_SCL);
  Wire.setClock(400000);
  Wire.setTimeOut(10);  // ms: a loose wire must not hang the loop
  return mpu_write(0x6B, 0x01)                      // PWR_MGMT_1: awake, clock = gyro X PLL
         && mpu_write(0x1A, mpu_dlpf_for(rate_hz))  // CONFIG: DLPF
         && mpu_write(0x19, 0)                      // SMPLRT_DIV: 1 kHz internal rate
         && mpu_write(0x1B, 0x08)                   // GYRO_CONFIG: +-500 deg/s
         && mpu_write(0x1C, 0x08);                  // ACCEL_CONFIG: +-4 g
}

// Chip frame (right-handed, as printed on most breakouts). A failed read keeps the last values.
inline void imu_read(float* v) {
  Wire.beginTransmission(kMpuAddress);
  Wire.write(0x3B);  // ACCEL_XOUT_H .. GYRO_ZOUT_L, temperature in between
  if (Wire.endTransmission(false) != 0 || Wire.requestFrom(kMpuAddress, uint8_t{14}) != 14) return;
  int16_t raw[7];
  for (int16_t& r : raw) {
    const int high = Wire.read();  // two statements: operand order in one expression is unspecified
    const int low = Wire.read();
    r = static_cast<int16_t>((high << 8) | low);
  }
  for (int c = 0; c < 3; ++c) v[c] = raw[c] / kMpuLsbPerG;
  for (int c = 0; c < 3; ++c) v[3 + c] = raw[4 + c] / kMpuLsbPerDps * kRadPerDeg;
}
}  // namespace gk

#else
#error "define GK_IMU_LSM9DS1, GK_IMU_BMI270 or GK_IMU_MPU6050 before including gk_imu.h"
#endif

#endif  // GK_IMU_H_
