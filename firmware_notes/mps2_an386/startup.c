// Reset and vector table for the Cortex-M4F of mps2-an386: copy .data, zero .bss, paint
// the stack (for the high-water mark), turn the FPU on, run C++ constructors, call main().
#include <stdint.h>
#include <string.h>

#include "board.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_bottom, __stack_top;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

int main(void);
void SysTick_Handler(void);
void Uart0Rx_Handler(void);

// With -nostartfiles nobody else defines it; C++ static destructors register against it.
void* __dso_handle = 0;

#define STACK_PAINT 0xA5A5A5A5u

__attribute__((noreturn)) static void halt(void) {
  for (;;) {
    __asm volatile("wfi");
  }
}

void Default_Handler(void) { halt(); }  // a fault: stop here (a debugger shows where)

__attribute__((noreturn, naked)) void Reset_Handler(void) {
  // Naked: no stack frame of ours is on the stack we are about to paint.
  __asm volatile(
      "ldr r0, =__stack_bottom\n"
      "ldr r1, =0xA5A5A5A5\n"
      "mov r2, sp\n"
      "1: cmp r0, r2\n"
      "bhs 2f\n"
      "str r1, [r0], #4\n"
      "b 1b\n"
      "2: b board_start\n");
}

__attribute__((noreturn, used)) void board_start(void) {
  memcpy(&__data_start, &__data_load, (size_t)((char*)&__data_end - (char*)&__data_start));
  memset(&__bss_start, 0, (size_t)((char*)&__bss_end - (char*)&__bss_start));
  // CPACR: full access to CP10/CP11 (the FPU), before any float instruction runs.
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;
  __asm volatile("dsb\n isb");
  for (void (**ctor)(void) = __init_array_start; ctor != __init_array_end; ++ctor) (*ctor)();
  main();
  halt();
}

size_t board_stack_used(void) {
  const uint32_t* word = &__stack_bottom;
  while (word < &__stack_top && *word == STACK_PAINT) ++word;
  return (size_t)((char*)&__stack_top - (char*)word);
}

size_t board_stack_size(void) { return (size_t)((char*)&__stack_top - (char*)&__stack_bottom); }

// Cortex-M4 exceptions, then the AN386's interrupts (QEMU hw/arm/mps2.c: UART0 RX is IRQ 0).
__attribute__((section(".isr_vector"), used)) static void (*const vectors[16 + 1])(void) = {
    (void (*)(void))&__stack_top,
    Reset_Handler,
    Default_Handler,  // NMI
    Default_Handler,  // HardFault
    Default_Handler,  // MemManage
    Default_Handler,  // BusFault
    Default_Handler,  // UsageFault
    0, 0, 0, 0,
    Default_Handler,  // SVCall
    Default_Handler,  // DebugMonitor
    0,
    Default_Handler,  // PendSV
    SysTick_Handler,
    Uart0Rx_Handler,  // IRQ 0
};
