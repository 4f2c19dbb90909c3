"""The sandbox holds a program to its limits: time (its forked children too), output, memory, and its folder."""

from __future__ import annotations

import signal
import time

from ncc.execution import Limits, ScratchFolder, run_sandboxed

LOOP_FOREVER = "int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n"

# Three children and a grandchild, each writing its own pid, then all spin forever.
FORK_CHILDREN = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void report(int fd) { char line[32]; sprintf(line, "%d\n", (int)getpid()); write(fd, line, strlen(line)); }
int main(void) {
  int fd = open("pids.txt", O_WRONLY | O_CREAT | O_APPEND, 0600);
  for (int i = 0; i < 3; i++) {
    if (fork() == 0) {
      if (i == 2 && fork() == 0) { report(fd); for (;;) { } }
      report(fd);
      for (;;) pause();
    }
  }
  for (;;) pause();
}
"""

# Exits at once, leaving a child (in its process group) running.
ORPHAN_CHILD = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
  pid_t child = fork();
  if (child == 0) { for (;;) pause(); }
  FILE *pids = fopen("child.txt", "w"); fprintf(pids, "%d\n", (int)child); fclose(pids);
  return 0;
}
"""

WRITE_FOREVER = r"""
#include <stdio.h>
int main(void) { for (;;) fputs("all work and no play makes Jack a dull boy\n", stdout); }
"""

# Many files, each below the per-file limit: only the watch on the folder's total size stops it.
MANY_FILES = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
  static char block[65536];
  memset(block, 'x', sizeof block);
  for (int i = 0;; i++) {
    char name[32]; sprintf(name, "f%d", i);
    FILE *f = fopen(name, "w"); for (int k = 0; k < 8; k++) fwrite(block, 1, sizeof block, f); fclose(f);
  }
}
"""

ALLOCATE_FOREVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  size_t total = 0;
  for (;;) {
    char *block = malloc(1 << 20);
    if (block == NULL) { printf("out of memory after %zu MiB\n", total >> 20); return 3; }
    memset(block, 1, 1 << 20);
    total += 1 << 20;
  }
}
"""

LEAVE_FILES = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/left-in-tmpdir.txt", getenv("TMPDIR"));
  FILE *a = fopen(path, "w"); fputs("x", a); fclose(a);
  FILE *b = fopen("left-in-cwd.txt", "w"); fputs("y", b); fclose(b);
  printf("%s\n", getenv("HOME"));
  return 0;
}
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_program_that_loops_forever_is_killed_at_its_time_limit(native, tmp_path):
    started = time.perf_counter()
    result = run_sandboxed([str(native(LOOP_FOREVER))], tmp_path, Limits(time_s=0.5))
    assert result.status == "timeout" and "timed out" in result.reason
    assert 0.5 <= result.wall_s < 0.5 + 2.0
    assert time.perf_counter() - started < 5.0


def test_forked_children_die_with_the_program_on_a_timeout(native, tmp_path):
    result = run_sandboxed([str(native(FORK_CHILDREN))], tmp_path, Limits(time_s=1.0))
    assert result.status == "timeout"
    descendants = [int(line) for line in (tmp_path / "pids.txt").read_text().split()]
    assert len(descendants) == 4
    assert not [pid for pid in descendants if _alive(pid)]


def test_a_child_left_running_after_a_normal_exit_is_killed(native, tmp_path):
    result = run_sandboxed([str(native(ORPHAN_CHILD))], tmp_path, Limits(time_s=5))
    assert result.succeeded
    child = int((tmp_path / "child.txt").read_text())
    assert not _alive(child)


def test_unbounded_output_stops_at_the_output_limit(native, tmp_path):
    limit = 1 << 20
    result = run_sandboxed([str(native(WRITE_FOREVER))], tmp_path, Limits(time_s=10, output_bytes=limit))
    assert result.status == "output-limit"
    assert len(result.stdout) <= limit
    assert result.wall_s < 5


def test_many_files_stop_at_the_folder_limit(native, tmp_path):
    limit = 4 << 20
    result = run_sandboxed([str(native(MANY_FILES))], tmp_path, Limits(time_s=10, output_bytes=limit))
    assert result.status == "output-limit"
    assert result.wall_s < 5


def test_unbounded_allocation_stops_at_the_memory_limit(native, tmp_path):
    limit = 256 << 20
    result = run_sandboxed([str(native(ALLOCATE_FOREVER))], tmp_path, Limits(time_s=10, memory_bytes=limit))
    assert result.exit_code == 3, (result.status, result.reason, result.stdout)
    megabytes = int(result.stdout.split()[4])
    assert 64 <= megabytes < 256, result.stdout


def test_nothing_is_left_outside_the_scratch_folder(native, tmp_path):
    with ScratchFolder(parent=tmp_path) as scratch:
        result = run_sandboxed([str(native(LEAVE_FILES))], scratch, Limits(time_s=5))
        assert result.succeeded
        assert result.stdout.decode().strip() == str(scratch)
        assert (scratch / "left-in-tmpdir.txt").is_file() and (scratch / "left-in-cwd.txt").is_file()
    assert list(tmp_path.iterdir()) == []


def test_a_crash_is_reported_with_its_signal(native, tmp_path):
    crash = "int main(void) { volatile int *p = 0; return *p; }\n"
    result = run_sandboxed([str(native(crash))], tmp_path, Limits(time_s=5))
    assert result.status == "signal" and result.signal == signal.SIGSEGV
    assert "SIGSEGV" in result.reason


def test_a_missing_program_is_an_error_not_an_exception(tmp_path):
    result = run_sandboxed([str(tmp_path / "nothing")], tmp_path, Limits(time_s=1))
    assert result.status == "error" and "cannot start" in result.reason
