"""Opening serial ports (any pyserial URL) with one-line errors, and finding a board again.

`serial_for_url(..., do_not_open=True)`, configure, then open, so `/dev/ttyACM0`, `COM3`,
`loop://`, `socket://host:port` and `rfc2217://...` all work the same way.
"""

from __future__ import annotations

import errno

import serial
import serial.tools.list_ports

from gesturekit.errors import UserError

DEFAULT_BAUD = 115200
READ_TIMEOUT_S = 0.05  # one chunked read waits at most this long


def open_port(url: str, baudrate: int = DEFAULT_BAUD, timeout: float = READ_TIMEOUT_S) -> serial.Serial:
    """Open `url` for chunked reads; a `UserError` says what is wrong and what to do."""
    try:
        port = serial.serial_for_url(url, do_not_open=True)
    except ValueError as e:  # an unknown URL scheme
        raise UserError(f"--port {url}: {e}") from None
    try:
        port.baudrate = baudrate
    except ValueError:
        raise UserError(f"--baud {baudrate}: not a valid baud rate; give the board's rate "
                        f"(e.g. {DEFAULT_BAUD})") from None
    port.timeout = timeout
    port.write_timeout = 1.0
    if hasattr(port, "exclusive"):
        port.exclusive = True  # a second program on the same port is an error, not a data race
    try:
        port.open()
    except serial.SerialException as e:
        raise port_error(url, e) from None
    return port


def port_error(url: str, e: serial.SerialException) -> UserError:
    """The one-line message for a port that will not open."""
    code = getattr(e, "errno", None)
    if code == errno.ENOENT or code == errno.ENODEV or (code is None and "No such file" in str(e)):
        return UserError(f"port {url} not found: is the board plugged in? "
                         "(list ports with `python -m serial.tools.list_ports`)")
    if code in (errno.EACCES, errno.EPERM):
        return UserError(f"permission denied on port {url}: add yourself to the dialout group "
                         "(`sudo usermod -aG dialout $USER`, then log in again)")
    if code in (errno.EBUSY, errno.EAGAIN) or "lock" in str(e):
        return UserError(f"port {url} is busy: another program has it open "
                         "(close serial monitors and other gesturekit commands)")
    return UserError(f"cannot open port {url}: {e}")


def find_port(match: str) -> str | None:
    """Device path of the first USB port matching `VID:PID` (hex) or a description substring."""
    vid_pid = _parse_vid_pid(match)
    for info in serial.tools.list_ports.comports():
        if vid_pid is not None:
            if (info.vid, info.pid) == vid_pid:
                return info.device
        elif match.lower() in f"{info.description} {info.manufacturer} {info.product}".lower():
            return info.device
    return None


def _parse_vid_pid(match: str) -> tuple[int, int] | None:
    parts = match.split(":")
    if len(parts) != 2:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None
