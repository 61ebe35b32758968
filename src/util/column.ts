/**
 * A growing column of numbers in typed-array pages of 65,536: no copy when it grows and at most one page unused,
 * where a doubled array would copy everything and leave up to half of itself empty (the columns of a long
 * SmartHub answer hold hundreds of thousands of points).
 */
type Typed = Float64Array | Uint32Array | Uint8Array;
const SHIFT = 16;
const PAGE = 1 << SHIFT;
const MASK = PAGE - 1;

export class Column {
  private readonly pages: Typed[] = [];

  constructor(private readonly kind: "f64" | "u32" | "u8") {}

  get(i: number): number {
    return (this.pages[i >>> SHIFT] as Typed)[i & MASK] as number;
  }

  set(i: number, v: number): void {
    let page = this.pages[i >>> SHIFT];
    while (!page) {
      this.pages.push(
        this.kind === "f64"
          ? new Float64Array(PAGE)
          : this.kind === "u32"
            ? new Uint32Array(PAGE)
            : new Uint8Array(PAGE),
      );
      page = this.pages[i >>> SHIFT];
    }
    page[i & MASK] = v;
  }
}
