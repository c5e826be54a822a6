/*
 * LD_PRELOAD shim for Debian 12's user-mode-linux (6.1) on hosts whose XSAVE area is larger than
 * UML expects (AVX-512, AMX).
 *
 * UML saves and restores each guest process's FPU state with ptrace(PTRACE_GETREGSET /
 * PTRACE_SETREGSET, NT_X86_XSTATE) and a buffer of its own fixed size. Reading with a short
 * buffer works (the kernel copies what fits), but newer host kernels accept a write only of the
 * whole XSAVE area, so on such hosts UML 6.1 dies at once with "ptrace set fp regs failed,
 * errno = 14". This shim makes each such write whole: it reads the tracee's full area, lays
 * UML's bytes over its start and writes the full area back. When the sizes already agree it
 * passes the call through untouched.
 *
 * Built by tests/realpeers/uml.py with the host's gcc; used only for the UML test guest.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_fn)(enum __ptrace_request, pid_t, void *, void *);

long ptrace(enum __ptrace_request request, ...)
{
    static ptrace_fn real;
    static unsigned char whole_area[1 << 16] __attribute__((aligned(64)));
    va_list ap;
    va_start(ap, request);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (!real)
        real = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    if (request == PTRACE_SETREGSET && (unsigned long)addr == NT_X86_XSTATE && data != NULL) {
        struct iovec *given = data;
        struct iovec whole = { whole_area, sizeof whole_area };
        if (real(PTRACE_GETREGSET, pid, addr, &whole) == 0 && whole.iov_len > given->iov_len) {
            memcpy(whole_area, given->iov_base, given->iov_len);
            return real(PTRACE_SETREGSET, pid, addr, &whole);
        }
    }
    return real(request, pid, addr, data);
}
