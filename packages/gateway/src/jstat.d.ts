/** The part of jStat (https://github.com/jstat/jstat, MIT) that the gateway's A/B report uses (Student-t quantiles). */
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
