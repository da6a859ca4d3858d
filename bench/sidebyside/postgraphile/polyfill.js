// Node 20 lacks Promise.withResolvers (Node 22 has it), which PostGraphile 5
// uses; imported before anything else.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
