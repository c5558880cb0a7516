// The gesture_classifier pipeline, one copy for every board (the Arduino sketch and the
// emulated mps2-an386 firmware): ring buffer -> every kHop samples normalise + quantise into
// the input tensor -> reset the LSTM state -> Invoke -> dequantise -> EventDetector; with a
// reference pose, every sample is first turned into the model's frame (gk_frame.h).
//
// Needs TensorFlow Lite Micro, and the bundle's model_config.h and model_data.h included
// before this header (not part of GestureKit.h, which stays free of TFLM).
#ifndef GK_CLASSIFIER_H_
#define GK_CLASSIFIER_H_
#include <stddef.h>
#include <stdint.h>

#include <new>

#include "gk_frame.h"
#include "gk_postprocess.h"
#include "gk_preprocess.h"
#include "gk_ring_buffer.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/pooling.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace gk {

// The exported model is full int8, so the ops that have an int8-only kernel get it: with
// CMSIS-NN that links 23 KB less for the same results (reference kernels: the same code).
// Every other op is registered as model_config.h's AddModelOps asks.
template <unsigned int N>
class Int8OpResolver : public tflite::MicroMutableOpResolver<N> {
  using Base = tflite::MicroMutableOpResolver<N>;

 public:
  TfLiteStatus AddConv2D() { return Base::AddConv2D(tflite::Register_CONV_2D_INT8()); }
  TfLiteStatus AddFullyConnected() {
    return Base::AddFullyConnected(tflite::Register_FULLY_CONNECTED_INT8());
  }
  TfLiteStatus AddMaxPool2D() { return Base::AddMaxPool2D(tflite::Register_MAX_POOL_2D_INT8()); }
  TfLiteStatus AddSoftmax() { return Base::AddSoftmax(tflite::Register_SOFTMAX_INT8()); }
  // Not AddUnidirectionalSequenceLSTM: CMSIS-NN's _INT8 variant asserts int16 weights and
  // halts on this model's int8 ones; the default registration runs it.
};

class GestureClassifier {
 public:
  GestureClassifier()
      : frame_(gesturekit::kReferenceSamples, gesturekit::kReferenceGravity, gesturekit::kTriads,
               gesturekit::kNumTriads, gesturekit::kAccTriad),
        ring_(ring_storage_, gesturekit::kWindow, gesturekit::kHop, gesturekit::kNumChannels),
        // Each class's own settings and the bundle's event classes (states are never announced).
        detector_(gesturekit::kNumClasses, gesturekit::kClassSmoothing, gesturekit::kClassThreshold,
                  gesturekit::kClassMinConsecutive, gesturekit::kClassRefractoryS,
                  gesturekit::kIsEventClass, history_, smoothed_) {}

  // Loads the model into `arena`; nullptr, or what failed.
  const char* begin(uint8_t* arena, size_t arena_bytes) {
    if (!detector_.ok()) return "more classes than GK_MAX_CLASSES";
    const tflite::Model* model = tflite::GetModel(g_model_data);
    if (model->version() != TFLITE_SCHEMA_VERSION) return "model schema differs from this TFLM";
    if (!gesturekit::AddModelOps(resolver_)) return "an op of the model could not be registered";
    interpreter_ = new (interpreter_storage_)
        tflite::MicroInterpreter(model, resolver_, arena, arena_bytes);
    if (interpreter_->AllocateTensors() != kTfLiteOk) {
      return "AllocateTensors: raise kTensorArenaBytes";
    }
    return nullptr;
  }

  // One sample in the model's units. True when a window ended with it and was classified:
  // then output(), probs() and, when `*fired`, `*event` describe it.
  bool push(const float* sample, Event* event, bool* fired) {
    *fired = false;
    ++samples_;
    if (gesturekit::kHasReferencePose) {
      const bool reference = !frame_.set();  // this sample sets the frame: no window holds it
      frame_.apply(sample, turned_, gesturekit::kNumChannels);
      if (reference) {  // windows start afresh in the (new) frame, as after a gap
        ring_.reset();
        detector_.reset();
        return false;
      }
      sample = turned_;
    }
    if (!ring_.push(sample)) return false;
    TfLiteTensor* input = interpreter_->input(0);
    quantize_window(ring_, gesturekit::kMean, gesturekit::kStd,
                    {gesturekit::kInputScale, gesturekit::kInputZeroPoint}, input->data.int8);
    if (gesturekit::kStateful) interpreter_->Reset();  // the LSTM starts from zero every window
    const uint32_t start = clock_ ? clock_() : 0;
    if (interpreter_->Invoke() != kTfLiteOk) return false;
    invoke_ticks_ = clock_ ? clock_() - start : 0;
    output_ = interpreter_->output(0)->data.int8;
    dequantize_output(output_, gesturekit::kNumClasses,
                      {gesturekit::kOutputScale, gesturekit::kOutputZeroPoint}, probs_);
    *fired = detector_.update(probs_, samples_ / static_cast<double>(gesturekit::kSampleRateHz),
                              samples_, event);
    return true;
  }

  // After a gap: no window spans it (the refractory clock survives, as in the runner).
  void restart() {
    ring_.reset();
    detector_.reset();
  }

  // The reference-pose frame (set() once its first samples went by; restart() to set it again).
  ReferenceFrame& frame() { return frame_; }

  // A clock to time Invoke() with (the board's tick counter); invoke_ticks() then reads it.
  void set_clock(uint32_t (*clock)()) { clock_ = clock; }
  uint32_t invoke_ticks() const { return invoke_ticks_; }
  const int8_t* output() const { return output_; }  // the last window's int8 outputs
  const float* probs() const { return probs_; }
  long samples() const { return samples_; }  // since start, as the runner counts them
  size_t arena_used_bytes() const { return interpreter_->arena_used_bytes(); }

 private:
  float ring_storage_[gesturekit::kWindow * gesturekit::kNumChannels];
  float history_[gesturekit::kMaxSmoothing * gesturekit::kNumClasses];
  float smoothed_[gesturekit::kNumClasses];
  float probs_[gesturekit::kNumClasses] = {};
  float turned_[gesturekit::kNumChannels];
  ReferenceFrame frame_;
  RingBuffer ring_;
  EventDetector detector_;
  Int8OpResolver<gesturekit::kNumOps> resolver_;
  alignas(tflite::MicroInterpreter) uint8_t interpreter_storage_[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter_ = nullptr;
  const int8_t* output_ = nullptr;
  long samples_ = 0;
  uint32_t (*clock_)() = nullptr;
  uint32_t invoke_ticks_ = 0;
};

}  // namespace gk
#endif  // GK_CLASSIFIER_H_
