import { Arg, Ctx, Field, Int, Mutation, ObjectType, Resolver } from "type-graphql";
import { requireMerchant } from "../authz";
import type { GraphQLContext } from "../context";

@ObjectType({ description: "A short-lived token that lets a merchant's app act for one customer only." })
export class CustomerToken {
  @Field(() => String)
  token!: string;

  @Field(() => String)
  customerUid!: string;

  @Field(() => Date)
  expiresAt!: Date;
}

@Resolver()
export class AuthResolver {
  @Mutation(() => CustomerToken, {
    description: "Mint a customer token (merchant keys only). Send it as Authorization: Bearer <token> from the customer's app.",
  })
  createCustomerToken(
    @Arg("customerUid", () => String) customerUid: string,
    @Arg("ttlSeconds", () => Int, { nullable: true, defaultValue: 900 }) ttlSeconds: number | null,
    @Ctx() ctx: GraphQLContext,
  ): CustomerToken {
    requireMerchant(ctx);
    return ctx.customerTokens.mint(customerUid, ttlSeconds ?? 900);
  }
}
