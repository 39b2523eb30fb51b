/**
 * Gathers the calls made at the same moment into batches: `add(name)`
 * resolves with that name's result once the batch holding it has run.
 * Batches run one at a time, at most `max` names each.
 */
export class Batcher<T> {
  private queue: { name: string; resolve: (r: T) => void; reject: (e: unknown) => void }[] = [];
  private running: Promise<void> = Promise.resolve();
  private scheduled = false;

  constructor(
    private readonly run: (names: readonly string[]) => Promise<Map<string, T | Error>>,
    private readonly max = 1000,
  ) {}

  add(name: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ name, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.running = this.running.then(() => this.flush());
        });
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.max);
      try {
        const results = await this.run(batch.map((b) => b.name));
        for (const b of batch) {
          const r = results.get(b.name);
          if (r instanceof Error || r === undefined)
            b.reject(r ?? new Error(`${b.name}: no result`));
          else b.resolve(r);
        }
      } catch (error) {
        for (const b of batch) b.reject(error);
      }
    }
  }
}
