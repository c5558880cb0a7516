// SysTick clock, the CMSDK APB UART0 driver and the few system calls newlib-nano needs.
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "board.h"

// CMSDK APB UART (Arm DDI 0479): QEMU's model takes one received byte at a time and does
// not read the pty again until the guest has taken it, so nothing is lost while RX waits.
typedef struct {
  volatile uint32_t data;
  volatile uint32_t state;  // bit 0: TX buffer full, bit 1: RX buffer full
  volatile uint32_t ctrl;   // bit 0: TX enable, bit 1: RX enable, bit 3: RX interrupt enable
  volatile uint32_t intstatus;  // write 1 to clear
  volatile uint32_t bauddiv;
} CmsdkUart;

#define UART0 ((CmsdkUart*)0x40004000u)
#define UART_TX_FULL 1u
#define UART_RX_FULL 2u
#define UART_CTRL_TX_RX 3u
#define UART_CTRL_RX_IRQ 8u

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define NVIC_ISER0 (*(volatile uint32_t*)0xE000E100u)

#define TICKS_PER_MS (1000u * BOARD_TICKS_PER_US)

static volatile uint32_t milliseconds;

// Received bytes wait here. When it is full the next byte stays in the UART, and QEMU reads
// no more from the pty until it is taken: the sender is held back, nothing is dropped.
#define RX_RING_BYTES 1024u
static volatile uint8_t rx_ring[RX_RING_BYTES];
static volatile uint32_t rx_head, rx_tail;  // head: next write, tail: next read

void SysTick_Handler(void) { ++milliseconds; }

static void rx_drain(void) {
  while ((UART0->state & UART_RX_FULL) && rx_head - rx_tail < RX_RING_BYTES) {
    rx_ring[rx_head % RX_RING_BYTES] = (uint8_t)UART0->data;
    ++rx_head;
  }
}

void Uart0Rx_Handler(void) {
  UART0->intstatus = UART_RX_FULL;  // first: a byte arriving during the drain raises it again
  rx_drain();
}

void board_init(void) {
  UART0->bauddiv = 25000000u / 115200u;
  UART0->ctrl = UART_CTRL_TX_RX | UART_CTRL_RX_IRQ;
  NVIC_ISER0 = 1u << 0;  // UART0 RX
  SYST_RVR = TICKS_PER_MS - 1u;
  SYST_CVR = 0;
  SYST_CSR = 7u;  // processor clock, interrupt, enable
}

uint32_t board_ticks(void) {
  uint32_t ms, value;
  do {  // a SysTick interrupt between the two reads would pair a new value with an old count
    ms = milliseconds;
    value = SYST_CVR;
  } while (ms != milliseconds);
  return ms * TICKS_PER_MS + (TICKS_PER_MS - 1u - value);
}

uint32_t board_micros(void) {
  uint32_t ms, value;
  do {
    ms = milliseconds;
    value = SYST_CVR;
  } while (ms != milliseconds);
  return ms * 1000u + (TICKS_PER_MS - 1u - value) / BOARD_TICKS_PER_US;
}

uint32_t board_millis(void) { return milliseconds; }

void uart_write(const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    while (UART0->state & UART_TX_FULL) {
    }
    UART0->data = (uint8_t)data[i];
  }
}

void uart_puts(const char* line) {
  size_t n = 0;
  while (line[n] != '\0') ++n;
  uart_write(line, n);
  uart_write("\r\n", 2);
}

int uart_read(void) {
  if (rx_tail == rx_head) {
    __asm volatile("cpsid i" ::: "memory");
    rx_drain();  // a byte held back while the ring was full raised no interrupt of its own
    __asm volatile("cpsie i" ::: "memory");
    if (rx_tail == rx_head) return -1;
  }
  const int byte = rx_ring[rx_tail % RX_RING_BYTES];
  ++rx_tail;
  return byte;
}

// newlib-nano system calls: a heap of HEAP_SIZE (linker script) for strtod's big numbers,
// stdout/stderr to the UART, nothing else.
extern char __heap_start, __heap_end;

void* _sbrk(ptrdiff_t increment) {
  static char* brk = &__heap_start;
  if (increment > &__heap_end - brk || increment < &__heap_start - brk) {
    errno = ENOMEM;
    return (void*)-1;
  }
  char* old = brk;
  brk += increment;
  return old;
}

int _write(int fd, const char* data, int n) {
  (void)fd;
  uart_write(data, (size_t)n);
  return n;
}

int _read(int fd, char* data, int n) {
  (void)fd;
  (void)data;
  (void)n;
  return 0;
}

int _close(int fd) {
  (void)fd;
  return -1;
}

int _fstat(int fd, struct stat* st) {
  (void)fd;
  st->st_mode = S_IFCHR;
  return 0;
}

int _isatty(int fd) {
  (void)fd;
  return 1;
}

int _lseek(int fd, int offset, int whence) {
  (void)fd;
  (void)offset;
  (void)whence;
  return 0;
}

void _exit(int status) {
  (void)status;
  for (;;) {
  }
}

int _kill(int pid, int sig) {
  (void)pid;
  (void)sig;
  errno = EINVAL;
  return -1;
}

int _getpid(void) { return 1; }
