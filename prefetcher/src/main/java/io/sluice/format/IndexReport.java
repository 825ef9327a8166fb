package io.sluice.format;

import java.util.List;

/**
 * What indexing produced.
 *
 * @param reused true when the existing manifest was still valid and kept
 * @param notes things the operator should know that are not errors (for example trailing tokens
 *     ignored in a shard)
 */
public record IndexReport(Manifest manifest, boolean reused, List<String> notes) {
  public IndexReport {
    notes = List.copyOf(notes);
  }
}
