package io.sluice.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class LongMapTest {

  @Test
  void getAllAnswersEachKeyAsGetDoes() {
    Random rnd = new Random(11);
    LongMap<String> map = new LongMap<>();
    for (int i = 0; i < 5_000; i++) {
      long key = rnd.nextInt(20_000) * 4096L; // multiples of a power of two: probe chains
      map.put(key, "v" + key);
    }
    long[] keys = new long[300];
    for (int i = 0; i < keys.length; i++) {
      keys[i] = rnd.nextInt(20_000) * 4096L; // about a quarter present
    }
    Object[] out = new Object[keys.length + 1];
    out[keys.length - 1] = "stale";
    out[keys.length] = "beyond";
    map.getAll(keys, keys.length, out);
    for (int i = 0; i < keys.length; i++) {
      assertEquals(map.get(keys[i]), out[i], "key " + keys[i]);
    }
    assertEquals("beyond", out[keys.length], "only count keys are written");
  }

  @Test
  void agreesWithHashMapOverRandomPutsAndRemoves() {
    Random rnd = new Random(7);
    LongMap<String> map = new LongMap<>();
    HashMap<Long, String> expected = new HashMap<>();
    for (int i = 0; i < 200_000; i++) {
      // Dense sequential keys (sample ids), a few huge ones (NEVER steps), and negatives.
      long key =
          switch (rnd.nextInt(4)) {
            case 0 -> rnd.nextInt(5_000);
            case 1 -> Long.MAX_VALUE - rnd.nextInt(3);
            case 2 -> -rnd.nextInt(50);
            default -> rnd.nextInt(100_000) * 4096L;
          };
      int op = rnd.nextInt(3);
      if (op == 0) {
        assertEquals(expected.put(key, "v" + i), map.put(key, "v" + i), "put " + key);
      } else if (op == 1) {
        assertEquals(expected.remove(key), map.remove(key), "remove " + key);
      } else {
        assertEquals(expected.get(key), map.get(key), "get " + key);
        assertEquals(expected.containsKey(key), map.containsKey(key), "containsKey " + key);
      }
      assertEquals(expected.size(), map.size());
    }
    assertEquals(new HashSet<>(expected.values()), new HashSet<>(map.values()));
    for (Long k : expected.keySet()) {
      assertEquals(expected.get(k), map.get(k), "after the run, key " + k);
    }
    map.clear();
    assertEquals(0, map.size());
    assertNull(map.get(0));
  }

  @Test
  void refusesNullValues() {
    LongMap<String> map = new LongMap<>();
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> map.put(3, null));
    assertEquals("value=null for key=3 must be non-null", e.getMessage());
  }

  @Test
  void refusesTheEmptySlotMarkerAsAKey() {
    LongMap<String> map = new LongMap<>();
    map.put(Long.MAX_VALUE, "last");
    map.put(0, "zero");
    for (var call :
        List.<org.junit.jupiter.api.function.Executable>of(
            () -> map.put(LongMap.EMPTY, "x"),
            () -> map.get(LongMap.EMPTY),
            () -> map.remove(LongMap.EMPTY))) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
      assertEquals("key=" + Long.MIN_VALUE + " is reserved for empty slots", e.getMessage());
    }
    assertEquals("last", map.get(Long.MAX_VALUE));
    assertEquals(2, map.size());
  }
}
