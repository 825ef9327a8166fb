package io.sluice.cache;

import io.sluice.planner.LookAhead;

/**
 * The oracle behind {@link BeladyPolicy}: the first step at or after {@code currentStep} at which
 * this node needs a sample. The plan knows every future access, so this is exact, not a guess.
 * Implementations must be cheap (called on every insert and release) and must answer {@link #NEVER}
 * rather than throw for a sample they do not know.
 */
@FunctionalInterface
public interface NextUse {
  /** No local rank needs the sample again within the horizon. */
  long NEVER = Long.MAX_VALUE;

  /** The smallest step {@code >= currentStep} at which the sample is needed, or {@link #NEVER}. */
  long nextUseStep(long sampleId, long currentStep);

  /**
   * The planner's look-ahead over this epoch and the next: steps numbered as {@link
   * LookAhead#nextUseStep} numbers them (next-epoch steps follow this epoch's); {@link #NEVER} for
   * ids outside the dataset.
   */
  static NextUse of(LookAhead lookAhead) {
    long samples = lookAhead.thisEpoch().sequence().size();
    return (sampleId, currentStep) ->
        sampleId >= 0 && sampleId < samples ? lookAhead.nextUseStep(sampleId, currentStep) : NEVER;
  }
}
