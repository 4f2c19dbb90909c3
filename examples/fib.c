/* A small C program whose graph shows a loop, a branch, recursion and a call to libc. */
#include <stdio.h>

static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void) {
    int total = 0;
    for (int i = 0; i < 10; i++) {
        if (i % 2 == 0)
            total += fib(i);
    }
    printf("%d\n", total);
    return 0;
}
