/* hostile_target: a process built to attack whoever inspects it.
 *
 * Why: stackpeek reads names, paths and memory chosen by the target, often as
 * root.  Nothing the target contains may crash or hang stackpeek or reach the
 * user's terminal as an escape sequence.  This target gathers the hostile
 * cases the safety suite (tests/integration/test_safety_hostile.py) checks:
 *
 *  - threads whose names hold terminal escapes, control characters and
 *    invalid UTF-8;
 *  - threads executing code from file mappings whose path, after mapping, is
 *    replaced by a FIFO (and by a device node, or a symlink to /dev/zero when
 *    mknod is not permitted); the names " (deleted)" that /proc/PID/maps then
 *    shows are made to exist as a FIFO/device too, so a reader that opens the
 *    path as shown meets them.  The mapped file starts with a forged ELF
 *    header whose PT_GNU_EH_FRAME table points at garbage FDEs;
 *  - threads parked on a corrupt stack (stack and frame pointers aimed at a
 *    fake stack): "garbage" (random words), "deep" (an endless chain of
 *    valid-looking return addresses, in a 64 MiB mapping: copy and depth
 *    bounds), "loop" (a frame-pointer chain that points to itself).
 *
 * Usage: hostile_target --dir DIR --ready-fd FD
 * Prints nothing on success; the oracle the tests need (thread ids per role)
 * is written to DIR/oracle.txt as "role tid" lines before the ready byte.
 * Built without sanitizers, like the other targets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Parks the thread with rsp = rdi and rbp = rsi, in pause() forever.  The
 * CFI is the default one of a function entry (CFA = rsp + 8), so an unwinder
 * takes the word at the new rsp as the return address. */
__asm__(".text\n"
        ".globl hostile_park\n"
        ".type hostile_park,@function\n"
        "hostile_park:\n"
        ".cfi_startproc\n"
        "  mov %rdi, %rsp\n"
        "  mov %rsi, %rbp\n"
        "1: mov $34, %eax\n" /* SYS_pause */
        "  syscall\n"
        "  jmp 1b\n"
        ".cfi_endproc\n"
        ".size hostile_park, .-hostile_park\n");
void hostile_park(uint64_t sp, uint64_t bp) __attribute__((noreturn));

/* A leaf whose CFI is "CFA = rsp + 8" everywhere: a return address inside it
 * makes every step pop exactly one word. */
__asm__(".text\n"
        ".globl hostile_leaf\n"
        ".type hostile_leaf,@function\n"
        "hostile_leaf:\n"
        ".cfi_startproc\n"
        "  nop\n"
        "  nop\n"
        "  nop\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size hostile_leaf, .-hostile_leaf\n");
void hostile_leaf(void);

/* A function with a frame pointer (CFA = rbp + 16 after its prologue): a
 * return address inside it makes the unwinder follow rbp. */
__asm__(".text\n"
        ".globl hostile_fp\n"
        ".type hostile_fp,@function\n"
        "hostile_fp:\n"
        ".cfi_startproc\n"
        "  push %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "  mov %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "  nop\n"
        ".globl hostile_fp_body\n"
        "hostile_fp_body:\n"
        "  nop\n"
        "  pop %rbp\n"
        ".cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size hostile_fp, .-hostile_fp\n");
extern char hostile_fp_body[];

static const char *dir;
static FILE *oracle;
static pthread_mutex_t oracle_lock = PTHREAD_MUTEX_INITIALIZER;
static int started, total;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;

static void die(const char *what) {
  fprintf(stderr, "hostile_target: %s: %s\n", what, strerror(errno));
  exit(2);
}

/* Records this thread's role and tid, then counts it as started. */
static void report(const char *role) {
  pthread_mutex_lock(&oracle_lock);
  fprintf(oracle, "%s %ld\n", role, (long)syscall(SYS_gettid));
  pthread_mutex_unlock(&oracle_lock);
  pthread_mutex_lock(&start_lock);
  ++started;
  pthread_cond_signal(&start_cond);
  pthread_mutex_unlock(&start_lock);
}

static void park_forever(void) {
  for (;;)
    pause();
}

/* ---- hostile thread names ---- */
struct named {
  const char *role, *name;
};
static const struct named kNames[] = {
    {"name-csi", "\x1b[31mRED\x1b[0m"},
    {"name-osc", "\x1b]0;pwn\x07x"},
    {"name-utf8", "bad\xff\xfe\x9b" "2J"},
    {"name-ctl", "a\tb\rc\x7f\x01"},
};

static void *named_thread(void *arg) {
  const struct named *n = arg;
  if (pthread_setname_np(pthread_self(), n->name) != 0)
    die("pthread_setname_np");
  report(n->role);
  park_forever();
  return NULL;
}

/* ---- code in a file mapping whose path is then replaced ---- */
struct file_code {
  const char *role;
  const char *file;        /* name inside dir */
  int device;              /* replace with a device node instead of a FIFO */
};
static const struct file_code kFileCode[] = {
    {"code-fifo", "\x1b[2Jfifo\xff\n.so", 0},
    {"code-device", "dev\x1b[5m.so", 1},
};

/* A forged ELF image: header, one executable PT_LOAD, a PT_GNU_EH_FRAME
 * whose table points at garbage FDEs; code at 0x800 loops in pause(). */
static void forge_image(uint8_t *img) {
  memset(img, 0xcc, 4096);
  uint8_t *h = img;
  memset(h, 0, 64);
  memcpy(h, "\x7f" "ELF", 4);
  h[4] = 2; /* 64-bit */
  h[5] = 1; /* little endian */
  h[6] = 1;
  *(uint16_t *)(h + 16) = 3;    /* ET_DYN */
  *(uint16_t *)(h + 18) = 62;   /* x86_64 */
  *(uint64_t *)(h + 32) = 64;   /* e_phoff */
  *(uint16_t *)(h + 52) = 64;   /* e_ehsize */
  *(uint16_t *)(h + 54) = 56;   /* e_phentsize */
  *(uint16_t *)(h + 56) = 2;    /* e_phnum */
  uint8_t *ph = img + 64;
  memset(ph, 0, 112);
  *(uint32_t *)(ph + 0) = 1;    /* PT_LOAD */
  *(uint32_t *)(ph + 4) = 5;    /* R+X */
  *(uint64_t *)(ph + 32) = 4096;
  *(uint64_t *)(ph + 40) = 4096;
  ph += 56;
  *(uint32_t *)(ph + 0) = 0x6474e550; /* PT_GNU_EH_FRAME */
  *(uint64_t *)(ph + 16) = 0x400;     /* p_vaddr */
  /* .eh_frame_hdr at 0x400: version 1, eh_frame_ptr pcrel|sdata4, count
   * udata4, table datarel|sdata4 */
  uint8_t *hdr = img + 0x400;
  hdr[0] = 1;
  hdr[1] = 0x1b;
  hdr[2] = 0x03;
  hdr[3] = 0x3b;
  *(int32_t *)(hdr + 4) = 0x200;  /* eh_frame at 0x600 */
  *(uint32_t *)(hdr + 8) = 3;     /* fde count */
  int32_t *table = (int32_t *)(hdr + 12);
  /* (initial location, FDE address), relative to hdr, sorted */
  table[0] = 0x000; table[1] = 0x200;        /* FDE at 0x600: self-referencing CIE */
  table[2] = 0x3f0; table[3] = 0x220;        /* FDE at 0x620: huge length */
  table[4] = 0x400; table[5] = 0x7ffffff0;   /* FDE far outside the mapping */
  uint8_t *fde = img + 0x600;
  *(uint32_t *)(fde + 0) = 0x1c;  /* length */
  *(uint32_t *)(fde + 4) = 4;     /* CIE pointer: points at itself */
  memset(fde + 8, 0xff, 0x18);
  fde = img + 0x620;
  *(uint32_t *)(fde + 0) = 0xfffffff0; /* length: "64-bit" escape-ish garbage */
  *(uint32_t *)(fde + 4) = 0x24;
  /* code at 0x800: mov eax, 34; syscall; jmp back */
  static const uint8_t code[] = {0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7};
  memcpy(img + 0x800, code, sizeof code);
}

static void *file_code_thread(void *arg) {
  const struct file_code *fc = arg;
  char path[4096], deleted[4200], tmp[4096];
  snprintf(path, sizeof path, "%s/%s", dir, fc->file);
  snprintf(deleted, sizeof deleted, "%s (deleted)", path);
  snprintf(tmp, sizeof tmp, "%s/tmp-%s", dir, fc->role);
  uint8_t img[4096];
  forge_image(img);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (fd < 0 || write(fd, img, sizeof img) != (ssize_t)sizeof img)
    die("write code file");
  void *base = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
  if (base == MAP_FAILED)
    die("mmap code file (is the directory on a noexec mount?)");
  close(fd);
  /* Replace the path (and the path maps will show) with a FIFO or device. */
  const char *targets[2] = {path, deleted};
  for (int i = 0; i < 2; ++i) {
    unlink(tmp);
    if (fc->device) {
      if (mknod(tmp, S_IFCHR | 0600, makedev(1, 5)) != 0 && symlink("/dev/zero", tmp) != 0)
        die("device node");
    } else if (mkfifo(tmp, 0600) != 0) {
      die("mkfifo");
    }
    if (rename(tmp, targets[i]) != 0)
      die("rename");
  }
  report(fc->role);
  void (*fn)(void) = (void (*)(void))((uint8_t *)base + 0x800);
  fn();
  return NULL;
}

/* ---- corrupt stacks ---- */
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void *corrupt_thread(void *arg) {
  const char *mode = arg;
  size_t size = strcmp(mode, "deep") == 0 ? (64u << 20) : (1u << 20);
  uint64_t *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED)
    die("mmap fake stack");
  size_t words = size / 8;
  uint64_t sp, bp;
  if (strcmp(mode, "garbage") == 0) {
    for (size_t i = 0; i < words; ++i)
      stack[i] = next_random();
    sp = (uint64_t)(stack + words / 2);
    bp = next_random();
  } else if (strcmp(mode, "deep") == 0) {
    /* Fill 16 MiB (more than the 8 MiB copy bound) with "return into the
     * leaf", starting at the very bottom of the mapping. */
    for (size_t i = 0; i < (16u << 20) / 8; ++i)
      stack[i] = (uint64_t)(uintptr_t)hostile_leaf + 1;
    sp = (uint64_t)stack + 128;
    bp = 0;
  } else { /* loop: [A] = A, [A+8] = return into hostile_fp's body */
    for (size_t i = 0; i + 1 < words; i += 2) {
      stack[i] = (uint64_t)(stack + i);
      stack[i + 1] = (uint64_t)(uintptr_t)hostile_fp_body;
    }
    uint64_t *a = stack + words / 2;
    sp = (uint64_t)(a + 1);
    bp = (uint64_t)a;
  }
  char role[32];
  snprintf(role, sizeof role, "stack-%s", mode);
  report(role);
  hostile_park(sp, bp);
}

static void start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  int err = pthread_create(&t, NULL, fn, arg);
  if (err) {
    errno = err;
    die("pthread_create");
  }
  ++total;
}

int main(int argc, char **argv) {
  int ready_fd = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "--ready-fd")) ready_fd = atoi(argv[i + 1]);
  }
  if (!dir || ready_fd < 0) {
    fprintf(stderr, "usage: hostile_target --dir DIR --ready-fd FD [ignored args...]\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/oracle.txt", dir);
  oracle = fopen(path, "w");
  if (!oracle)
    die("oracle");
  fprintf(oracle, "main %ld\n", (long)getpid());
  for (size_t i = 0; i < sizeof kNames / sizeof kNames[0]; ++i)
    start(named_thread, (void *)&kNames[i]);
  for (size_t i = 0; i < sizeof kFileCode / sizeof kFileCode[0]; ++i)
    start(file_code_thread, (void *)&kFileCode[i]);
  start(corrupt_thread, "garbage");
  start(corrupt_thread, "deep");
  start(corrupt_thread, "loop");
  pthread_mutex_lock(&start_lock);
  while (started < total)
    pthread_cond_wait(&start_cond, &start_lock);
  pthread_mutex_unlock(&start_lock);
  fclose(oracle);
  char c = 'R';
  if (write(ready_fd, &c, 1) != 1)
    die("ready fd");
  close(ready_fd);
  park_forever();
}
