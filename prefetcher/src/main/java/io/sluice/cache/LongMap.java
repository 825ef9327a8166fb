package io.sluice.cache;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * A hash map from primitive {@code long} keys to non-null values: open addressing, linear probing,
 * deletion by backward shift (no tombstones). The cache's per-sample maps use it because {@code
 * HashMap<Long, V>} boxes every key and chases a node per lookup, which was a tenth of a stream
 * thread's time at a few hundred thousand samples a second. A probe reads only the key array (an
 * empty slot holds {@link #EMPTY}, which is therefore not a valid key), so a lookup in a map larger
 * than the CPU's caches misses on one key line and one value, not on both arrays at every step. Not
 * thread-safe.
 */
public final class LongMap<V> {
  private static final int MIN_CAPACITY = 16;

  /** The key of an empty slot; refused as a key. */
  static final long EMPTY = Long.MIN_VALUE;

  private long[] keys; // EMPTY marks an empty slot
  private Object[] values;
  private int size;
  private int mask;
  private int shift; // 64 - log2(capacity): the slot is the top bits of the mixed key

  public LongMap() {
    allocate(MIN_CAPACITY);
  }

  public int size() {
    return size;
  }

  @SuppressWarnings("unchecked")
  public V get(long key) {
    return (V) values[find(key)]; // null at an empty slot
  }

  /**
   * {@code out[i] = get(keys[i])} for {@code i < count}. The look-ups do not depend on each other,
   * so in a map larger than the CPU's caches their misses overlap, where look-ups interleaved with
   * other work wait for each miss in turn.
   */
  public void getAll(long[] keys, int count, Object[] out) {
    for (int i = 0; i < count; i++) {
      out[i] = values[find(keys[i])];
    }
  }

  public boolean containsKey(long key) {
    return get(key) != null;
  }

  /** Maps {@code key} to {@code value}; returns the value it replaces, or null. */
  @SuppressWarnings("unchecked")
  public V put(long key, V value) {
    if (value == null) {
      throw new IllegalArgumentException("value=null for key=" + key + " must be non-null");
    }
    int i = find(key);
    Object old = values[i];
    keys[i] = key; // after find: a valid key
    values[i] = value;
    if (old == null && ++size > (mask + 1) / 4 * 3) {
      rehash((mask + 1) * 2);
    }
    return (V) old;
  }

  /** Removes {@code key}; returns its value, or null when it was absent. */
  @SuppressWarnings("unchecked")
  public V remove(long key) {
    int i = find(key);
    Object v = values[i];
    if (v != null) {
      size--;
      shiftBack(i);
    }
    return (V) v;
  }

  /** The slot holding {@code key}, or the empty slot that ends its probe run. */
  private int find(long key) {
    if (key == EMPTY) {
      throw new IllegalArgumentException("key=" + key + " is reserved for empty slots");
    }
    int i = slot(key);
    long k;
    while ((k = keys[i]) != key && k != EMPTY) {
      i = (i + 1) & mask;
    }
    return i;
  }

  void clear() {
    allocate(MIN_CAPACITY);
    size = 0;
  }

  /** The values, copied into a new list. */
  @SuppressWarnings("unchecked")
  List<V> values() {
    List<V> out = new ArrayList<>(size);
    for (Object v : values) {
      if (v != null) {
        out.add((V) v);
      }
    }
    return out;
  }

  @SuppressWarnings("unchecked")
  void forEachValue(Consumer<? super V> action) {
    for (Object v : values) {
      if (v != null) {
        action.accept((V) v);
      }
    }
  }

  /** Empties slot {@code gap}, moving later entries of its probe run back into it as they allow. */
  private void shiftBack(int gap) {
    int i = gap;
    while (true) {
      i = (i + 1) & mask;
      long k = keys[i];
      if (k == EMPTY) {
        break;
      }
      int home = slot(k);
      // The entry at i may move to gap unless its home lies cyclically in (gap, i].
      if (((i - home) & mask) >= ((i - gap) & mask)) {
        keys[gap] = k;
        values[gap] = values[i];
        gap = i;
      }
    }
    keys[gap] = EMPTY;
    values[gap] = null;
  }

  private int slot(long key) {
    // Fibonacci hashing: sequential ids and steps spread over the whole table.
    return (int) ((key * 0x9E3779B97F4A7C15L) >>> shift);
  }

  private void allocate(int capacity) {
    keys = new long[capacity];
    java.util.Arrays.fill(keys, EMPTY);
    values = new Object[capacity];
    mask = capacity - 1;
    shift = 64 - Integer.numberOfTrailingZeros(capacity);
  }

  private void rehash(int capacity) {
    long[] oldKeys = keys;
    Object[] oldValues = values;
    allocate(capacity);
    for (int i = 0; i < oldValues.length; i++) {
      if (oldKeys[i] != EMPTY) {
        int j = slot(oldKeys[i]);
        while (keys[j] != EMPTY) {
          j = (j + 1) & mask;
        }
        keys[j] = oldKeys[i];
        values[j] = oldValues[i];
      }
    }
  }
}
