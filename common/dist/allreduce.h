/*
 * allreduce — data-parallel training without PS: each MPI rank holds a replica of the model and
 * the gradients are averaged over the ranks with MPI_Allreduce, Horovod style, before every
 * rank applies the same update.
 *
 * The graph: pst_allreduce_gradients puts two ops between each gradient and its apply op.
 * PstAllreduceStart hands the gradient to the process's engine as soon as it is computed (it is
 * a pure node, so inter-op helper threads run it the moment its input is ready, while the
 * backward pass goes on); PstAllreduceWait, just before the apply ops, returns the average.
 *
 * The engine: one thread per process. Every cycle (cycle_ms) the ranks combine a bit per
 * gradient, "ready here", with one bitwise-AND allreduce (so every rank learns which gradients
 * are ready everywhere, and all take the same decision without a coordinator); the gradients
 * ready everywhere are packed, in the fixed order of their slots and by dtype, into fusion
 * buffers of at most fusion_bytes, each reduced with one MPI_Allreduce and unpacked (averaged
 * on the way out). A gradient of 1 MiB or more, or alone in its buffer, is reduced straight
 * from its tensor into its output, no copy (the previous step's output tensor is reused once
 * the step released it). A cycle waits up to cycle_ms for the rest of a step's gradients and
 * ends early when all are there. Collectives of data are tested without pause until done
 * (sleeping between tests stalls their rounds); the negotiation sleeps between tests while
 * other ranks may still compute. A collective that does not complete within timeout_ms fails
 * every waiting step with an error instead of hanging.
 *
 *     int rank, size;
 *     pst_allreduce_start(&(pst_allreduce_opts){0}, &rank, &size, &st);  // MPI, engine, ops
 *     oo.transform_grads = pst_allreduce_transform; // optimizer.h: averaged before applied
 *     ... build the model; init (rank 0: or restore) ...
 *     pst_allreduce_broadcast_vars(pst_session_vars(s), 0, &st);          // rank 0's values
 *     ... train: every step's update is the same on every rank ...
 *     pst_allreduce_stop();
 */
#ifndef PST_ALLREDUCE_H
#define PST_ALLREDUCE_H

#include <stdint.h>

#include "graph.h"
#include "optimizer.h"
#include "tensor.h"
#include "varstore.h"

typedef struct pst_allreduce_opts {
    int64_t fusion_bytes; /* fusion buffer size (default 64 MiB, Horovod's; < 0: 0 = every
                             gradient in a collective of its own) */
    double cycle_ms;      /* how often ready gradients are negotiated and reduced (default 5,
                             Horovod's; < 0: 0 = no wait between cycles) */
    int64_t timeout_ms;   /* a collective waiting longer fails (default 60000) */
    int quiet;
    int first_rank;       /* the engine's ranks are MPI ranks first_rank .. size-1 (hybrid
                             mode: the workers after the PS ranks); only they start it, and
                             *rank, *size are within them. Default 0: every rank. */
} pst_allreduce_opts;

/* Initializes MPI (transport_mpi.h), registers the ops and starts the process's engine. *rank
 * and *size (may be NULL) get this rank and the number of ranks. */
int pst_allreduce_start(const pst_allreduce_opts *o, int *rank, int *size, pst_status *st);
/* Stops the engine (steps still waiting fail). MPI stays initialized (pst_mpi_finalize). */
void pst_allreduce_stop(void);

/* The optimizer hook (pst_optimizer_opts.transform_grads): every dense gradient is replaced by
 * its average over the ranks. A sparse (embedding) gradient is an error recorded in the graph.
 * With ctx non-NULL (hybrid mode) the gradients of variables placed on a PS ("/job:ps...",
 * sparse or not) are left as they are: they go to their PS. */
void pst_allreduce_transform(void *ctx, pst_graph *g, int n, pst_grad_var *gv);

/* What the ops call, usable directly (benchmarks): hands gradient `slot` (0 .. n_slots-1, the
 * same slots in the same order on every rank) to the engine (borrowed: referenced until
 * reduced), and waits for its average (a new tensor the caller unrefs; NULL with st set on
 * error or timeout). */
int pst_allreduce_submit(int slot, int n_slots, pst_tensor *t, pst_status *st);
pst_tensor *pst_allreduce_wait(int slot, pst_status *st);

/* Every variable of vs (by name, in sorted order) takes the value it has on rank root; the
 * ranks must hold the same variables (an error names the first difference). */
int pst_allreduce_broadcast_vars(pst_var_store *vs, int root, pst_status *st);
/* A collective all ranks pass (nothing else moves meanwhile on its communicator). */
int pst_allreduce_barrier(pst_status *st);

/* Counters since start: collectives of gradient data run, their bytes, negotiation cycles. */
typedef struct pst_allreduce_stats {
    int64_t reductions, bytes, cycles;
} pst_allreduce_stats;
void pst_allreduce_get_stats(pst_allreduce_stats *s);

#endif
