/*
 * memtune — the allocator settings a pstrain process runs with, set once by each binary's main().
 *
 *     int main(int argc, char **argv) {
 *         pst_memtune_process();
 *         ...
 *
 * Training moves the same large buffers every step (4 MB transport chunks, pulled variables,
 * gradients, activations). glibc serves blocks above 128 KB-32 MB with a fresh mmap and gives
 * freed memory back to the kernel, so every step pays a page fault and a zeroed page for every
 * 4 KB it touches: push plus pull of 100 MB ran at 0.64 of raw TCP with that, 0.89 without
 * (bench_transport). pst_memtune_process keeps blocks up to PST_MEMTUNE_MMAP_MB (64) in the heap
 * and keeps up to PST_MEMTUNE_TRIM_MB (256) of freed heap for reuse; larger tensors (embedding
 * tables) still get their own mapping and are returned when freed.
 *
 * Library code never calls it (it changes the whole process); PST_MALLOC_TUNE=0 in the
 * environment leaves glibc's defaults.
 */
#ifndef PST_MEMTUNE_H
#define PST_MEMTUNE_H

#define PST_MEMTUNE_MMAP_MB 64
#define PST_MEMTUNE_TRIM_MB 256

/* Applies the settings unless PST_MALLOC_TUNE=0; 1 when applied, 0 when not. */
int pst_memtune_process(void);

#endif
