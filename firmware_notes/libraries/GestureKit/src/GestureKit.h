// GestureKit for Arduino: the board side of gesturekit. The pure C++ parts (no Arduino API)
// compile on the host too, where tests/test_firmware.py checks them against the Python runner.
#ifndef GESTUREKIT_H_
#define GESTUREKIT_H_

#include "gk_format.h"
#include "gk_pacer.h"
#include "gk_postprocess.h"
#include "gk_preprocess.h"
#include "gk_ring_buffer.h"

#endif  // GESTUREKIT_H_
