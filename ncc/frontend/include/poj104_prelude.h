/*
 * ncc prelude for POJ-104 programs (student C/C++ from the Peking University online judge).
 *
 * The CodeXGLUE copy of POJ-104 has every #include line stripped, and the programs were written for
 * old compilers that forgave a lot. This header restores what they relied on: the C and C++ standard
 * headers people use in judge solutions, `using namespace std;`, and a `gets` that C++14 removed.
 * NCC did the same with its header.cpp (cstdio, cstdlib, cmath, cstring, iostream, using namespace std).
 * Force-included by ncc.frontend.dialects.poj104 (written for ncc).
 */
#ifndef NCC_POJ104_PRELUDE_H
#define NCC_POJ104_PRELUDE_H

#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <string>

using namespace std;

/* gets() left C++ in C++14 and C in C11; judge solutions still call it. Reads one line, drops the
 * newline, returns NULL at end of input, like the original. */
static inline char *ncc_poj104_gets(char *buffer) {
  if (!fgets(buffer, 1 << 30, stdin)) return 0;
  size_t length = strlen(buffer);
  if (length && buffer[length - 1] == '\n') buffer[length - 1] = '\0';
  return buffer;
}
#define gets ncc_poj104_gets

#endif /* NCC_POJ104_PRELUDE_H */
