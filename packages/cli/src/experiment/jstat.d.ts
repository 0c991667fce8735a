/** The part of jStat (https://github.com/jstat/jstat, MIT) that `kvmgr experiment` uses. */
declare module 'jstat' {
  const jstat: {
    readonly jStat: {
      readonly studentt: {
        /** Quantile of Student's t distribution with `dof` degrees of freedom at probability `p`. */
        inv(p: number, dof: number): number;
      };
    };
  };
  export default jstat;
}
