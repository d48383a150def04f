// Stand-in for a JVM service that starts worker threads (WildFly in kind#2896).
public class Threads {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 400; i++) {
            Thread t = new Thread(() -> {
                try { Thread.sleep(5000); } catch (InterruptedException e) { }
            });
            t.start();
        }
    }
}
