package io.sluice.peer;

import java.util.List;

/** One daemon of a job: its node rank and the paths that reach it, the first one its identity. */
public record PeerNode(int rank, List<PeerPath> paths) {
  public PeerNode {
    if (rank < 0) {
      throw new IllegalArgumentException("rank=" + rank + " must be >= 0");
    }
    paths = List.copyOf(paths);
    if (paths.isEmpty()) {
      throw new IllegalArgumentException("node rank=" + rank + " has no paths");
    }
  }
}
