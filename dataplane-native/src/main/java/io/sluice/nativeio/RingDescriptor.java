package io.sluice.nativeio;

/**
 * The io_uring ABI this package uses: structure offsets, opcodes, flags (from {@code
 * include/uapi/linux/io_uring.h}, stable since Linux 5.1; {@code IORING_OP_READ} since 5.6).
 *
 * <pre>
 * io_uring_setup(entries, params) -&gt; ring fd; the kernel fills params (120 bytes):
 *   0 sq_entries u32 | 4 cq_entries u32 | 8 flags u32 | 12 sq_thread_cpu | 16 sq_thread_idle
 *  20 features u32   | 24 wq_fd | 28 resv[3]
 *  40 sq_off: head, tail, ring_mask, ring_entries, flags, dropped, array (u32 each), resv, user_addr
 *  80 cq_off: head, tail, ring_mask, ring_entries, overflow, cqes, flags (u32 each), resv, user_addr
 *
 * mmap(ring fd, offset):              shared with the kernel
 *   IORING_OFF_SQ_RING  0x0           +--------+--------+-----+---------------------+
 *                                     | head   | tail   | ... | array[sq_entries]   |  u32 indexes
 *                                     +--------+--------+-----+---------------------+
 *   IORING_OFF_CQ_RING  0x8000000     | head   | tail   | ... | cqes[cq_entries]    |  16 B each
 *     (the same mapping as the SQ ring when features has IORING_FEAT_SINGLE_MMAP)
 *   IORING_OFF_SQES     0x10000000    | sqe[0] | sqe[1] | ... 64 B each             |
 *
 * Producer/consumer: the application writes SQEs, then releases sq.tail; the kernel releases
 * sq.head as it consumes them. The kernel writes CQEs, then releases cq.tail; the application
 * releases cq.head after reading them.
 *
 * sqe (64 B): 0 opcode u8 | 1 flags u8 | 2 ioprio u16 | 4 fd s32 | 8 off u64 | 16 addr u64
 *            24 len u32 | 28 rw_flags u32 | 32 user_data u64 | 40 buf_index u16 | ... pad to 64
 * cqe (16 B): 0 user_data u64 | 8 res s32 (bytes, or -errno) | 12 flags u32
 * </pre>
 */
final class RingDescriptor {
  static final int PARAMS_BYTES = 120;
  static final int PARAMS_SQ_ENTRIES = 0;
  static final int PARAMS_CQ_ENTRIES = 4;
  static final int PARAMS_FLAGS = 8;
  static final int PARAMS_FEATURES = 20;
  static final int PARAMS_SQ_OFF = 40;
  static final int PARAMS_CQ_OFF = 80;

  // io_sqring_offsets, relative to PARAMS_SQ_OFF
  static final int SQ_OFF_HEAD = 0;
  static final int SQ_OFF_TAIL = 4;
  static final int SQ_OFF_RING_MASK = 8;
  static final int SQ_OFF_RING_ENTRIES = 12;
  static final int SQ_OFF_ARRAY = 24;

  // io_cqring_offsets, relative to PARAMS_CQ_OFF
  static final int CQ_OFF_HEAD = 0;
  static final int CQ_OFF_TAIL = 4;
  static final int CQ_OFF_RING_MASK = 8;
  static final int CQ_OFF_RING_ENTRIES = 12;
  static final int CQ_OFF_CQES = 20;

  static final long IORING_OFF_SQ_RING = 0L;
  static final long IORING_OFF_CQ_RING = 0x8000000L;
  static final long IORING_OFF_SQES = 0x10000000L;

  static final int SQE_BYTES = 64;
  static final int SQE_OPCODE = 0;
  static final int SQE_FLAGS = 1;
  static final int SQE_IOPRIO = 2;
  static final int SQE_FD = 4;
  static final int SQE_OFF = 8;
  static final int SQE_ADDR = 16;
  static final int SQE_LEN = 24;
  static final int SQE_RW_FLAGS = 28;
  static final int SQE_USER_DATA = 32;

  static final int CQE_BYTES = 16;
  static final int CQE_USER_DATA = 0;
  static final int CQE_RES = 8;
  static final int CQE_FLAGS = 12;

  static final byte IORING_OP_NOP = 0;
  static final byte IORING_OP_READ = 22;

  static final int IORING_ENTER_GETEVENTS = 1;

  static final int IORING_SETUP_SINGLE_ISSUER = 1 << 12; // 6.0
  static final int IORING_SETUP_DEFER_TASKRUN = 1 << 13; // 6.1

  static final int IORING_FEAT_SINGLE_MMAP = 1;
  static final int IORING_FEAT_NODROP = 1 << 1;

  static final int IORING_REGISTER_PROBE = 8;
  static final int PROBE_HEADER_BYTES = 16; // last_op u8, ops_len u8, resv u16, resv2 u32[3]
  static final int PROBE_OP_BYTES = 8; // op u8, resv u8, flags u16, resv2 u32
  static final int PROBE_OP_FLAGS = 2;
  static final int IO_URING_OP_SUPPORTED = 1;

  private RingDescriptor() {}
}
