// Placeholder replaced by the read-through cache decorator (issue 3).
export interface CacheOptions { readonly maxBytes: number }
export class CachedStore {}
