"""How the experiment scripts end on an error: one ``error:`` line on the
console and the traceback in a log file, whatever the disk does.

A full disk is the case that shapes this: the log file sits on the disk
that filled, so every write to it may fail. Log records that cannot be
written are dropped (the console still gets the warnings), and a traceback
that cannot be written is named as lost in the ``error:`` line instead of
raising a second error over the first; after that line, what the process
prints as it shuts down goes to the log too.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import tempfile
import threading
import traceback

from absl import logging


class _TolerantStream:
  """A log file whose writes never raise: after an ``OSError`` (a full or
  vanished disk) it drops what it is given."""

  def __init__(self, path: str):
    self._file = open(path, "a")  # noqa: SIM115 -- held for the process
    self.failed = False

  def _guarded(self, action) -> None:
    # ValueError: the file was closed (logging closes its handlers at exit,
    # before the interpreter's last flush of stderr).
    if not self.failed:
      try:
        action()
      except (OSError, ValueError):
        self.failed = True

  def write(self, text: str) -> int:
    self._guarded(lambda: self._file.write(text))
    return len(text)

  def flush(self) -> None:
    self._guarded(self._file.flush)

  def close(self) -> None:
    self._guarded(self._file.close)


class _MainThreadConsole:
  """The console for what the main thread prints (progress, warnings, the
  ``error:`` line); what other threads print goes to the log. When a save
  fails, orbax's and tensorstore's writer threads print a traceback for
  every chunk they still held ("Event loop is closed"), before and after
  the error reaches the main thread."""

  def __init__(self, console, log: _TolerantStream):
    self._console, self._log = console, log

  def write(self, text: str) -> int:
    if threading.current_thread() is threading.main_thread():
      return self._console.write(text)
    return self._log.write(text)

  def flush(self) -> None:
    self._console.flush()
    self._log.flush()

  def __getattr__(self, name: str):
    return getattr(self._console, name)


def log_to_file(path: str) -> None:
  """Sends absl log records (orbax's too) to ``path`` instead of the
  console, and warnings to both.

  orbax logs each failed background write with its traceback: on the
  console they would bury the one line that says what went wrong.

  Raises:
    OSError: ``path`` cannot be opened.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  log = _TolerantStream(path)
  logging.get_absl_handler().python_handler.stream = log
  sys.stderr = _MainThreadConsole(sys.stderr, log)
  std_logging.captureWarnings(True)
  console = std_logging.StreamHandler(sys.stderr)
  console.setFormatter(std_logging.Formatter("%(message)s"))
  std_logging.getLogger("py.warnings").addHandler(console)


def log_path(folder: str | None, name: str) -> str:
  """``folder/name`` when ``folder`` is an existing writable folder, else
  a file of that name in the system's temporary folder."""
  if folder and os.path.isdir(folder) and os.access(folder, os.W_OK):
    return os.path.join(folder, name)
  stem, extension = os.path.splitext(name)
  return os.path.join(
    tempfile.gettempdir(), f"flowjax_gen.{stem}.{os.getpid()}{extension}"
  )


def report(error: BaseException, path: str) -> int:
  """Appends the current traceback to ``path`` and prints ``error:`` with
  the error in one line; returns the exit status, 1."""
  where = f"traceback: {path}"
  try:
    with open(path, "a") as f:
      f.write(traceback.format_exc())
  except OSError as failure:
    where = f"the traceback could not be written to {path}: {failure.strerror}"
  message = " ".join(str(error).split())
  print(f"error: {type(error).__name__}: {message} ({where})", file=sys.stderr)
  sys.stderr.flush()
  # What the process prints while it shuts down goes to the log: after a
  # failed save, orbax's writer threads report "Event loop is closed" for
  # each chunk they still held, which would bury the line above.
  try:
    sys.stderr = _TolerantStream(path)
  except OSError:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 -- until exit
  return 1
