package io.sluice.cli;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;

/**
 * SIGTERM and SIGINT handled by the daemon itself, so a graceful stop exits 0 (left to the JVM,
 * they run the shutdown hooks and exit 143 or 130, which systemd and Kubernetes count as a
 * failure). Uses {@code sun.misc.Signal} from the jdk.unsupported module, through reflection so
 * that the build's -Werror does not trip on an internal API; where it is missing, the JVM's default
 * stays.
 */
final class Signals {
  private Signals() {}

  /**
   * Runs {@code stop} on a new thread at SIGTERM or SIGINT; null when arranged, else why not (the
   * JVM's default handling stays: the shutdown hooks run and the exit status is 128 + signal).
   */
  static String onTermination(Runnable stop) {
    try {
      Class<?> signal = Class.forName("sun.misc.Signal");
      Class<?> handlerType = Class.forName("sun.misc.SignalHandler");
      InvocationHandler call =
          (proxy, method, args) ->
              switch (method.getName()) {
                case "handle" -> {
                  Thread.ofPlatform().name("sluice-stop").start(stop);
                  yield null;
                }
                case "hashCode" -> System.identityHashCode(proxy);
                case "equals" -> proxy == args[0];
                case "toString" -> "sluice stop handler";
                default -> null;
              };
      Object handler =
          Proxy.newProxyInstance(handlerType.getClassLoader(), new Class<?>[] {handlerType}, call);
      for (String name : new String[] {"TERM", "INT"}) {
        Object sig = signal.getConstructor(String.class).newInstance(name);
        signal.getMethod("handle", signal, handlerType).invoke(null, sig, handler);
      }
      return null;
    } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
      return e.toString();
    }
  }
}
