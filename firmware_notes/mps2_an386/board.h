// The emulated board: QEMU's mps2-an386 (Arm MPS2 FPGA image AN386, a Cortex-M4F) with its
// CMSDK APB UART0 as the serial port and SysTick as the clock. Startup code, linker script
// and UART driver are ours (no vendor SDK); the firmwares above this header do not know
// they run on an emulator.
#ifndef GK_BOARD_H_
#define GK_BOARD_H_
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// QEMU clocks the AN386's Cortex-M4 (and SysTick, processor clock source) at 25 MHz of
// emulated time: real time normally, one instruction per nanosecond under `-icount shift=0`.
#define BOARD_TICKS_PER_US 25u

void board_init(void);  // SysTick 1 ms, UART0 115200 8N1 with RX interrupt

// Monotonic clock. ticks: 25 MHz, wraps every 171 s (take differences modulo 2^32).
uint32_t board_ticks(void);
uint32_t board_micros(void);
uint32_t board_millis(void);

// UART0. Writes block while the transmitter is busy; reads never block (-1: nothing yet).
void uart_write(const char* data, size_t n);
void uart_puts(const char* line);  // `line` and "\r\n", as Arduino's println
int uart_read(void);

// Bytes of stack ever used (the stack is painted at reset); RAM the linker placed.
size_t board_stack_used(void);
size_t board_stack_size(void);

#ifdef __cplusplus
}
#endif
#endif  // GK_BOARD_H_
